from services.common.migrate import run_env
from services.shipment.models import Base

run_env(Base.metadata)

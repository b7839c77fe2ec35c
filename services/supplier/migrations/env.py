from services.common.migrate import run_env
from services.supplier.models import Base

run_env(Base.metadata)

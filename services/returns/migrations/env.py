from services.common.migrate import run_env
from services.returns.models import Base

run_env(Base.metadata)

from services.common.app import serve
from services.returns.app import create
from services.returns.settings import get_settings

serve(create(), get_settings())

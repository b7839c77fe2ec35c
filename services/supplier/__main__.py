from services.common.app import serve
from services.supplier.app import create
from services.supplier.settings import get_settings

serve(create(), get_settings())

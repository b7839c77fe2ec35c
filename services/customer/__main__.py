from services.common.app import serve
from services.customer.app import create
from services.customer.settings import get_settings

serve(create(), get_settings())

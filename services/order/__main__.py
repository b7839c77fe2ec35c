from services.common.app import serve
from services.order.app import create
from services.order.settings import get_settings

serve(create(), get_settings())

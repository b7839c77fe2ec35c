from services.common.app import serve
from services.shipment.app import create
from services.shipment.settings import get_settings

serve(create(), get_settings())

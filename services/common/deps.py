"""`Annotated` dependency aliases every service's routes share."""

from typing import Annotated

from fastapi import Depends

from services.common.app import Runtime, runtime_of
from services.common.idempotency import idempotency_key

RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
IdempotencyKey = Annotated[str, Depends(idempotency_key)]

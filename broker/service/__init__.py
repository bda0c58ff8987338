"""The running broker: engine + ledger + clock + background services."""

from ..errors import Backpressure
from .broker import Broker
from .clock import Clock, ManualClock, SystemClock
from .settings import ServiceSettings

__all__ = ["Backpressure", "Broker", "Clock", "ManualClock", "ServiceSettings", "SystemClock"]

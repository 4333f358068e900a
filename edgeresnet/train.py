"""Training and fine-tuning (the implementation lives in :mod:`edgeresnet.training`).

Kept for code written against earlier releases (the project itself imports edgeresnet.training): ``from edgeresnet.training import TrainJob, train``.
"""

from __future__ import annotations

from edgeresnet import training as _training
from edgeresnet.training import *

__all__ = list(_training.__all__)

"""loopml.sim: the simulated ad/content feed that is loopml's embedded default data.

``World(WorldConfig(...)).generate()`` returns event frames (``user``, ``item``,
``impression``, ``click``, ``conversion``) with the columns of
:mod:`loopml.logs.schemas`, and the same world scores any policy in closed loop
against its known click function (see :mod:`loopml.sim.world`).
"""

from loopml.sim.config import WorldConfig
from loopml.sim.world import World

__all__ = ["World", "WorldConfig"]

"""Sharding a leading batch axis (ensemble members, folds x repetitions) over devices."""

from ._sharding import (
    batch_mesh as batch_mesh,
    shard_batch as shard_batch,
    sharded_map as sharded_map,
    sharded_vmap as sharded_vmap,
)

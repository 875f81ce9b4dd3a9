"""Many-seed batched training: B networks of one architecture as one tensor program.

Each network has its own initialisation (row `init_id` of the prior's INIT_STREAM) and its
own data order (its permutation of the training points in epoch e comes from row
`order_id` of stream ORDER_STREAM + e // ORDER_BLOCK), so network j's run depends only on
(seed, init_id[j], order_id[j]), never on which other networks share its batch. Networks do not interact, so the gradient
of the summed loss with respect to theta[B, P] is, row by row, each network's own gradient;
SGD (with momentum) and Adam are applied functionally to those rows.

Stopping: before every update the whole training set is evaluated; a network whose
thresholded outputs (output > 0) match every label stops there ('fit'), the others stop
after `max_steps` updates ('budget'). At most `pool` networks train at once; stopped ones
are replaced from the queue, so slow networks never hold up the rest. Minibatches are realised as per-network weights over the training set
(1/batch on the points of the current batch, 0 elsewhere): the gradient is exactly the
minibatch gradient, and the same forward pass gives the full-set accuracy for stopping.

Modules by job: `optimizers` (the Trainer: options, validation, one optimiser step),
`order` (initialisations and data orders from counter-based streams, minibatch weights),
`losses` (per-point losses and batched gradients), `loop` (the pool that trains and stops
networks). The textbook one-network loop the tests compare against is tests/oracles.py.
"""
from volume.training.loop import TrainResult, train
from volume.training.optimizers import Trainer, build_trainer

__all__ = ["TrainResult", "Trainer", "build_trainer", "train"]

/*
 * nnh5.h - store neural-network tensors, models and checkpoints in HDF5.
 *
 * The umbrella header: include it, or the module headers under nnh5/.
 * Each module header documents its functions: what they do, who owns what,
 * which errors they return. The on-disk format is described in doc/FORMAT.md.
 */
#ifndef NNH5_H
#define NNH5_H

#include "nnh5/common.h"
#include "nnh5/dtype.h"
#include "nnh5/rng.h"
#include "nnh5/tensor.h"
#include "nnh5/list.h"
#include "nnh5/dict.h"
#include "nnh5/file.h"
#include "nnh5/save.h"
#include "nnh5/map.h"
#include "nnh5/nn.h"
#include "nnh5/train.h"
#include "nnh5/checkpoint.h"
#include "nnh5/untrusted.h"
#include "nnh5/walk.h"
#include "nnh5/keras.h"
#include "nnh5/safetensors.h"

#endif /* NNH5_H */

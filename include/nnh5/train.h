/*
 * nnh5/train.h - training an nnh5_model: a forward pass that remembers what
 * the backward pass needs, the backward pass, losses and optimizers.
 *
 * One step, as in PyTorch:
 *
 *     nnh5_model_zero_grad(net);                        // optimizer.zero_grad()
 *     nnh5_model_forward_train(&logits, net, X, &rng);  // logits = net(X), net.train()
 *     nnh5_loss_cross_entropy(&loss, &dlogits, logits, y);
 *     nnh5_model_backward(NULL, net, dlogits);          // loss.backward()
 *     nnh5_optim_step(opt);                             // optimizer.step()
 *
 * Everything runs in the model's dtype (float32 or float64) on OpenBLAS:
 * a Linear's backward is dW += dY^T X, db += dY^T 1, dX = dY W (cblas_?gemm;
 * ?gemv / ?ger for one row). The buffers behind the forward and backward
 * passes belong to the model and only grow, so once a batch shape has been
 * seen nnh5_model_forward_train_into(), nnh5_model_backward() (without
 * grad_input), nnh5_model_zero_grad() and nnh5_optim_step() allocate nothing.
 *
 * Determinism: nothing here draws from a hidden generator (Dropout draws
 * from the nnh5_rng the caller passes), and no result depends on what a
 * buffer held before, so the same parameters, optimizer state, generator
 * state, inputs and OpenBLAS thread count give bitwise the same parameters
 * after any number of steps. A run resumed from nnh5_model_state_dict(),
 * nnh5_optim_state_dict() and a copy of the caller's nnh5_rng (a plain
 * struct) continues bit for bit as the uninterrupted run.
 *
 * A model, and an optimizer, must not be used by two threads at once.
 */
#ifndef NNH5_TRAIN_H
#define NNH5_TRAIN_H

#include "dict.h"
#include "nn.h"
#include "rng.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The forward pass in training mode (torch's model.train()): as
 * nnh5_model_forward(), and each layer's output (and each Dropout's mask)
 * is kept in the model for nnh5_model_backward(). A Dropout with
 * 0 < p < 1 zeroes each element with probability p, drawing one
 * nnh5_rng_uniform() per element from rng in row-major order, and scales
 * the others by 1/(1-p) (inverted dropout, as torch); p = 0 is the
 * identity and p = 1 gives zeros, drawing nothing. rng may be NULL when no
 * Dropout needs it. Without Dropout the output is bitwise that of
 * nnh5_model_forward(). A LazyLinear infers its input now, and the
 * gradients of all parameters are created (zero) the first time.
 * A later forward_train replaces what an earlier one kept.
 * *out is a new tensor the caller frees with nnh5_tensor_free(); NULL on
 * failure, and then nothing is kept for backward.
 * Errors: NNH5_ERR_INVALID (x of another dtype; rng NULL while a Dropout
 * has 0 < p < 1), NNH5_ERR_SHAPE (as nnh5_model_forward()),
 * NNH5_ERR_OVERFLOW, NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_model_forward_train(nnh5_tensor **out, nnh5_model *m, const nnh5_tensor *x,
				      nnh5_rng *rng);

/*
 * nnh5_model_forward_train() into y, a tensor the caller owns of the
 * model's dtype and exactly the output shape (nnh5_model_output_shape()).
 * Allocates nothing once the model has seen this input shape.
 * Errors: those of nnh5_model_forward_train(), and NNH5_ERR_SHAPE or
 * NNH5_ERR_INVALID for a wrong or read-only y (then nothing is kept for
 * backward and no generator is drawn from).
 */
NNH5_API int nnh5_model_forward_train_into(nnh5_model *m, const nnh5_tensor *x, nnh5_tensor *y,
					   nnh5_rng *rng);

/*
 * The backward pass through what the last nnh5_model_forward_train() kept
 * (torch's loss.backward()): grad_output is dLoss/dOutput (the model's
 * dtype, the shape of that forward's output). Every parameter's gradient
 * is ADDED to (torch accumulates into .grad; clear with
 * nnh5_model_zero_grad()). It uses the parameters as they are now, so do
 * not change them between forward_train and backward. Each backward
 * consumes its forward_train (torch's retain_graph=False): a second
 * backward needs a new forward_train.
 * If grad_input is not NULL, *grad_input is a new tensor dLoss/dInput,
 * shaped as the forward's input, that the caller frees with
 * nnh5_tensor_free(); with grad_input NULL that gradient is not computed.
 * Errors: NNH5_ERR_INVALID (no forward_train to go back through, the
 * model's children changed since, grad_output of another dtype),
 * NNH5_ERR_SHAPE (grad_output's shape differs from the output's),
 * NNH5_ERR_NOMEM (*grad_input only; nothing was accumulated).
 */
NNH5_API int nnh5_model_backward(nnh5_tensor **grad_input, nnh5_model *m,
				 const nnh5_tensor *grad_output);

/*
 * Set every parameter's gradient to zero (torch's zero_grad(set_to_none=
 * False)), creating the gradients the first time.
 * Errors: NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_model_zero_grad(nnh5_model *m);

/*
 * The gradients as a new dict of views onto them, keyed and ordered as
 * nnh5_model_state_dict() ("hidden.weight", "hidden.bias", ...), creating
 * them (zero) the first time. Writing through a view changes the gradient
 * the optimizer uses. The caller frees the dict with nnh5_dict_free() and
 * must not use it after the model is freed. A LazyLinear that has not
 * inferred its input contributes no keys. Errors: NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_model_grads(nnh5_dict **out, nnh5_model *m);

/*
 * Softmax cross-entropy over class indices with mean reduction, as
 * torch.nn.CrossEntropyLoss() with its defaults except ignore_index (no
 * class is ignored: a target of -100 is out of range here), in a
 * numerically stable log-sum-exp: logits (N, C) with targets (N,), or
 * logits (C,) with a scalar target; N, C >= 1. logits float32 or float64,
 * targets int64 in [0, C). *loss = mean over n of
 * log(sum_j exp(logits[n][j])) - logits[n][targets[n]], computed in double.
 * If grad is not NULL, *grad is a new tensor dLoss/dLogits =
 * (softmax(logits) - onehot(targets)) / N, shaped and typed as logits, that
 * the caller frees with nnh5_tensor_free(); NULL on failure. NaN in the
 * logits propagates.
 * Errors: NNH5_ERR_INVALID (a dtype other than the above; a target out of
 * range: the message names its index and value), NNH5_ERR_SHAPE (other
 * ranks, targets not matching N, an empty batch or no classes),
 * NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_loss_cross_entropy(double *loss, nnh5_tensor **grad, const nnh5_tensor *logits,
				     const nnh5_tensor *targets);

/*
 * Mean-squared error, torch.nn.MSELoss(): *loss = mean((input - target)^2)
 * over all elements, computed in double. input and target float32 or
 * float64, of the same dtype and the same shape, at least one element.
 * If grad is not NULL, *grad is a new tensor dLoss/dInput =
 * 2 (input - target) / numel, shaped and typed as input, that the caller
 * frees with nnh5_tensor_free(); NULL on failure.
 * Errors: NNH5_ERR_INVALID (dtype), NNH5_ERR_SHAPE (shapes differ, or no
 * element), NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_loss_mse(double *loss, nnh5_tensor **grad, const nnh5_tensor *input,
			   const nnh5_tensor *target);

/*
 * Optimizers. An nnh5_optim updates the parameters of one model from their
 * gradients with PyTorch's rules (torch.optim.SGD, torch.optim.Adam of
 * PyTorch 1.13, foreach=False), element by element in the model's dtype:
 * hyperparameters are converted to that dtype as torch converts Python
 * floats, and the bias corrections and Adam's step size are computed in
 * double as torch computes them in Python.
 *
 * Lifetime: the optimizer borrows the model's parameters and gradients, so
 * the model must outlive it (free the optimizer first). Every parameter the
 * model has when the optimizer is created is optimised, and only those: a
 * LazyLinear must have inferred its input (a forward pass or a loaded
 * state dict) before, or creation fails. Loading a state dict into the
 * model later is fine (it copies into the same parameters). Every step
 * updates every parameter, also one whose gradient is zero (torch skips a
 * parameter whose .grad is None, which nnh5 never has).
 */
typedef struct nnh5_optim nnh5_optim;

/* The optimizer kinds. Pinned values: new kinds are only ever appended. */
typedef enum nnh5_optim_kind {
	NNH5_OPTIM_SGD = 1,
	NNH5_OPTIM_ADAM = 2,
} nnh5_optim_kind;

#define NNH5_SGD_OPTIONS_VERSION 1

/*
 * torch.optim.SGD's hyperparameters (maximize and foreach are not
 * offered). Initialise with NNH5_SGD_OPTIONS_INIT. torch has no default
 * learning rate; here it is 0.01.
 */
typedef struct nnh5_sgd_options {
	unsigned int version; /* NNH5_SGD_OPTIONS_VERSION */
	double lr;            /* >= 0 */
	double momentum;      /* >= 0; 0 keeps no momentum buffer */
	double dampening;     /* finite; 0 with nesterov */
	double weight_decay;  /* >= 0: L2, added to the gradient */
	bool nesterov;        /* needs momentum > 0 and dampening 0 */
} nnh5_sgd_options;

#define NNH5_SGD_OPTIONS_INIT { NNH5_SGD_OPTIONS_VERSION, 0.01, 0.0, 0.0, 0.0, false }

#define NNH5_ADAM_OPTIONS_VERSION 1

/*
 * torch.optim.Adam's hyperparameters, with torch's defaults through
 * NNH5_ADAM_OPTIONS_INIT (amsgrad, maximize and foreach are not offered).
 * weight_decay is torch.optim.Adam's L2 term added to the gradient, not
 * AdamW's decoupled decay.
 */
typedef struct nnh5_adam_options {
	unsigned int version; /* NNH5_ADAM_OPTIONS_VERSION */
	double lr;            /* >= 0; default 1e-3 */
	double beta1;         /* in [0, 1); default 0.9 */
	double beta2;         /* in [0, 1); default 0.999 */
	double eps;           /* >= 0; default 1e-8 */
	double weight_decay;  /* >= 0; default 0 */
} nnh5_adam_options;

#define NNH5_ADAM_OPTIONS_INIT { NNH5_ADAM_OPTIONS_VERSION, 1e-3, 0.9, 0.999, 1e-8, 0.0 }

/*
 * An SGD optimizer over m's parameters (opts NULL: NNH5_SGD_OPTIONS_INIT).
 * Per step, with g the gradient, p the parameter, b the momentum buffer:
 *   g = g + weight_decay p                     (if weight_decay != 0)
 *   b = g at the first step, else b = momentum b + (1 - dampening) g
 *                                              (if momentum != 0)
 *   g = g + momentum b if nesterov, else g = b (if momentum != 0)
 *   p = p - lr g
 * The momentum buffers are allocated (zero) now; the state dict holds
 * them from the start. *out is freed with nnh5_optim_free().
 * Errors: NNH5_ERR_INVALID (bad options: the message names the value; a
 * LazyLinear that has not inferred its input; a model without parameters;
 * a child named as a key of the optimizer's state dict, e.g. "lr" or
 * "step"), NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_optim_sgd_new(nnh5_optim **out, nnh5_model *m, const nnh5_sgd_options *opts);

/*
 * An Adam optimizer over m's parameters (opts NULL: NNH5_ADAM_OPTIONS_INIT).
 * Per step t = 1, 2, ... (one count for all parameters):
 *   g = g + weight_decay p                     (if weight_decay != 0)
 *   m1 = beta1 m1 + (1 - beta1) g
 *   m2 = beta2 m2 + (1 - beta2) g g
 *   p = p - (lr / (1 - beta1^t)) m1 / (sqrt(m2) / sqrt(1 - beta2^t) + eps)
 * m1 and m2 start at zero. *out is freed with nnh5_optim_free().
 * Errors: as nnh5_optim_sgd_new().
 */
NNH5_API int nnh5_optim_adam_new(nnh5_optim **out, nnh5_model *m, const nnh5_adam_options *opts);

/* Free the optimizer and its buffers (not the model's parameters). NULL is a no-op. */
NNH5_API void nnh5_optim_free(nnh5_optim *o);

/* The optimizer's kind. */
NNH5_API nnh5_optim_kind nnh5_optim_get_kind(const nnh5_optim *o);

/*
 * One update of every parameter from its current gradient (torch's
 * optimizer.step()); the gradients are left as they are. Allocates
 * nothing. Always NNH5_OK (an int for future kinds that can fail).
 */
NNH5_API int nnh5_optim_step(nnh5_optim *o);

/* The number of steps taken (restored by nnh5_optim_load_state_dict()). */
NNH5_API int64_t nnh5_optim_steps(const nnh5_optim *o);

/* The learning rate. */
NNH5_API double nnh5_optim_get_lr(const nnh5_optim *o);

/*
 * Change the learning rate for the following steps (a schedule).
 * Errors: NNH5_ERR_INVALID (lr negative or not finite; unchanged).
 */
NNH5_API int nnh5_optim_set_lr(nnh5_optim *o, double lr);

/*
 * The optimizer's state as a new dict with flat keys, enough to restore it
 * exactly with nnh5_optim_load_state_dict() (and to save with
 * nnh5_save_state_dict()). In order:
 *   SGD:  "lr", "momentum", "dampening", "weight_decay" (float64 scalars),
 *         "nesterov" (int64 scalar, 0 or 1), "step" (int64 scalar),
 *         then "<param>.momentum_buffer" for each parameter if momentum != 0;
 *   Adam: "lr", "betas" (float64, shape (2,)), "eps", "weight_decay"
 *         (float64 scalars), "step" (int64 scalar: the steps taken, one
 *         count for all parameters), then "<param>.exp_avg" and
 *         "<param>.exp_avg_sq" for each parameter.
 * <param> is the parameter's state-dict key ("hidden.weight"); the buffers
 * have its shape and the model's dtype. The scalars are owning copies of
 * the values now; the buffers are VIEWS of the optimizer's buffers (no
 * copy): they change with every step and must not be used after the
 * optimizer is freed. Before the first SGD step the momentum buffers are
 * zero and unused ("step" is 0), so the keys never depend on the step.
 * The caller frees the dict with nnh5_dict_free().
 * Errors: NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_optim_state_dict(nnh5_dict **out, const nnh5_optim *o);

/*
 * Restore the optimizer from a state dict as nnh5_optim_state_dict() gives
 * (hyperparameters included), strictly: every key above must be present
 * with exactly that dtype and shape, and no other key. Which buffer keys
 * are expected follows the source's own "momentum" (SGD). Everything is
 * checked before anything changes: on failure the optimizer is unchanged.
 * One message lists every missing key, unexpected key, shape mismatch and
 * dtype mismatch, e.g. "optimizer load_state_dict: missing keys: 'step';
 * unexpected keys: 'out.weight.exp_avg'; size mismatch:
 * 'hidden.weight.exp_avg': expected (256, 20), source (20, 256)".
 * Errors: NNH5_ERR_SHAPE (keys or shapes), NNH5_ERR_TYPE (only dtypes
 * differ), NNH5_ERR_INVALID (the other kind of optimizer's state, or a
 * hyperparameter or step out of range: the message names it),
 * NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_optim_load_state_dict(nnh5_optim *o, const nnh5_dict *sd);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_TRAIN_H */

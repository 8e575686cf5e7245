// Tensor math: creation, views and indexing, elementwise, reductions, linear algebra, random sampling and the
// in-place ops optimizers use. One N-API function per op, each a thin call into ATen; names and argument order
// follow src/native/binding.ts, where every function is typed.
#include "handles.h"

using seer::Args;

// ---- creation --------------------------------------------------------------------------------------------------
// (shape, dtype, device) -> tensor

SEER_OP(empty, at::empty(a.ints(0), a.options(1, 2)))
SEER_OP(zeros, at::zeros(a.ints(0), a.options(1, 2)))
SEER_OP(ones, at::ones(a.ints(0), a.options(1, 2)))
SEER_OP(full, at::full(a.ints(0), a.s(1), a.options(2, 3)))
SEER_OP(scalarTensor, at::scalar_tensor(a.s(0), a.options(1, 2)))
SEER_OP(arange, at::arange(a.d(0), a.d(1), a.d(2), a.options(3, 4)))
SEER_OP(linspace, at::linspace(a.d(0), a.d(1), a.i64(2), a.options(3, 4)))
SEER_OP(eye, at::eye(a.i64(0), a.options(1, 2)))
SEER_OP(rand, at::rand(a.ints(0), a.options(1, 2)))
SEER_OP(randn, at::randn(a.ints(0), a.options(1, 2)))
SEER_OP(randint, at::randint(a.i64(0), a.i64(1), a.ints(2), a.options(3, 4)))
SEER_OP(randperm, at::randperm(a.i64(0), a.options(1, 2)))
SEER_OP(zerosLike, at::zeros_like(a.t(0)))
SEER_OP(onesLike, at::ones_like(a.t(0)))
SEER_OP(emptyLike, at::empty_like(a.t(0)))
SEER_OP(fullLike, at::full_like(a.t(0), a.s(1)))
SEER_OP(randLike, at::rand_like(a.t(0)))
SEER_OP(randnLike, at::randn_like(a.t(0)))

// ---- conversion and copies ------------------------------------------------------------------------------------

SEER_OP(toDtype, a.t(0).to(a.dtype(1)))
// A copy between the CPU and a GPU waits on the host unless it is a non-blocking upload from page-locked memory.
SEER_FN(toDevice) {
  const at::Tensor& t = a.t(0);
  const at::Device dev = a.device(1);
  const bool nonBlocking = a.b(2);
  // "cuda" without an index is the current GPU: no copy for a tensor already there.
  const bool moves = t.device().type() != dev.type() || (dev.has_index() && t.device().index() != dev.index());
  if (seer::capturesUnderway().load() > 0 && moves && !(t.is_cpu() && nonBlocking && t.is_pinned()))
    seer::refuseDuringCapture("a copy between devices");
  return seer::wrap(a.env, t.to(dev, nonBlocking));
}
SEER_OP(pinMemory, a.t(0).pin_memory())
SEER_OP(contiguous, a.t(0).contiguous())
SEER_OP(channelsLast, a.t(0).contiguous(at::MemoryFormat::ChannelsLast))
SEER_OP(clone, a.t(0).clone())
SEER_OP(detach, a.t(0).detach())
SEER_INPLACE(copy_, a.t(0).copy_(a.t(1)))

// ---- views and indexing ---------------------------------------------------------------------------------------

SEER_OP(reshape, a.t(0).reshape(a.ints(1)))
SEER_OP(view, a.t(0).view(a.ints(1)))
SEER_OP(permute, a.t(0).permute(a.ints(1)))
SEER_OP(transpose, a.t(0).transpose(a.i64(1), a.i64(2)))
SEER_OP(unsqueeze, a.t(0).unsqueeze(a.i64(1)))
SEER_OP(squeeze, a.isNullish(1) ? a.t(0).squeeze() : a.t(0).squeeze(a.i64(1)))
SEER_OP(flatten, a.t(0).flatten(a.i64(1), a.i64(2)))
SEER_OP(expand, a.t(0).expand(a.ints(1)))
SEER_OP(repeat, a.t(0).repeat(a.ints(1)))
SEER_OP(narrow, a.t(0).narrow(a.i64(1), a.i64(2), a.i64(3)))
// slice(t, dim, start, end, step)
SEER_OP(slice, a.t(0).slice(a.i64(1), a.i64(2), a.i64(3), a.i64(4)))
SEER_OP(select, a.t(0).select(a.i64(1), a.i64(2)))
SEER_OP(indexSelect, a.t(0).index_select(a.i64(1), a.t(2)))
SEER_OP(gather, a.t(0).gather(a.i64(1), a.t(2)))
SEER_OP(scatter, a.t(0).scatter(a.i64(1), a.t(2), a.t(3)))
SEER_OP(maskedFill, a.t(0).masked_fill(a.t(1), a.s(2)))
SEER_FN(maskedSelect) {
  if (a.t(0).is_cuda()) seer::refuseDuringCapture("maskedSelect (its output size)");
  return seer::wrap(a.env, a.t(0).masked_select(a.t(1)));
}
SEER_OP(where, at::where(a.t(0), a.t(1), a.t(2)))
SEER_OP(flip, a.t(0).flip(a.ints(1)))
SEER_OP(roll, a.t(0).roll(a.ints(1), a.ints(2)))
SEER_OP(cat, at::cat(a.tensors(0), a.i64(1)))
SEER_OP(stack, at::stack(a.tensors(0), a.i64(1)))
SEER_FN(split) { return seer::wrapList(a.env, a.t(0).split(a.i64(1), a.i64(2))); }
SEER_FN(splitSizes) { return seer::wrapList(a.env, a.t(0).split_with_sizes(a.ints(1), a.i64(2))); }
SEER_FN(chunk) { return seer::wrapList(a.env, a.t(0).chunk(a.i64(1), a.i64(2))); }
SEER_FN(unbind) { return seer::wrapList(a.env, a.t(0).unbind(a.i64(1))); }
SEER_OP(tril, a.t(0).tril(a.i64(1)))
SEER_OP(triu, a.t(0).triu(a.i64(1)))
SEER_OP(diagonal, a.t(0).diagonal(a.i64(1), a.i64(2), a.i64(3)))
SEER_OP(oneHot, at::one_hot(a.t(0), a.i64(1)))
// constantPad(t, pads [left, right, top, bottom, ...], value)
SEER_OP(constantPad, at::constant_pad_nd(a.t(0), a.ints(1), a.d(2)))

// ---- elementwise -----------------------------------------------------------------------------------------------

SEER_OP(add, at::add(a.t(0), a.t(1), a.s(2)))
SEER_OP(addScalar, at::add(a.t(0), a.s(1)))
SEER_OP(sub, at::sub(a.t(0), a.t(1), a.s(2)))
SEER_OP(rsubScalar, at::rsub(a.t(0), a.s(1)))
SEER_OP(mul, at::mul(a.t(0), a.t(1)))
SEER_OP(mulScalar, at::mul(a.t(0), a.s(1)))
SEER_OP(div, at::div(a.t(0), a.t(1)))
SEER_OP(divScalar, at::div(a.t(0), a.s(1)))
SEER_OP(pow, at::pow(a.t(0), a.t(1)))
SEER_OP(powScalar, at::pow(a.t(0), a.s(1)))
SEER_OP(neg, at::neg(a.t(0)))
SEER_OP(abs, at::abs(a.t(0)))
SEER_OP(exp, at::exp(a.t(0)))
SEER_OP(log, at::log(a.t(0)))
SEER_OP(sqrt, at::sqrt(a.t(0)))
SEER_OP(rsqrt, at::rsqrt(a.t(0)))
SEER_OP(reciprocal, at::reciprocal(a.t(0)))
SEER_OP(sin, at::sin(a.t(0)))
SEER_OP(cos, at::cos(a.t(0)))
SEER_OP(tanh, at::tanh(a.t(0)))
SEER_OP(sigmoid, at::sigmoid(a.t(0)))
SEER_OP(relu, at::relu(a.t(0)))
SEER_OP(silu, at::silu(a.t(0)))
SEER_OP(gelu, at::gelu(a.t(0)))
SEER_OP(sign, at::sign(a.t(0)))
SEER_OP(floor, at::floor(a.t(0)))
SEER_OP(ceil, at::ceil(a.t(0)))
SEER_OP(round, at::round(a.t(0)))
SEER_OP(clamp, at::clamp(a.t(0), a.optScalar(1), a.optScalar(2)))
SEER_OP(maximum, at::maximum(a.t(0), a.t(1)))
SEER_OP(minimum, at::minimum(a.t(0), a.t(1)))
SEER_OP(lerp, at::lerp(a.t(0), a.t(1), a.d(2)))
SEER_OP(eq, at::eq(a.t(0), a.t(1)))
SEER_OP(ne, at::ne(a.t(0), a.t(1)))
SEER_OP(lt, at::lt(a.t(0), a.t(1)))
SEER_OP(le, at::le(a.t(0), a.t(1)))
SEER_OP(gt, at::gt(a.t(0), a.t(1)))
SEER_OP(ge, at::ge(a.t(0), a.t(1)))
SEER_OP(eqScalar, at::eq(a.t(0), a.s(1)))
SEER_OP(neScalar, at::ne(a.t(0), a.s(1)))
SEER_OP(ltScalar, at::lt(a.t(0), a.s(1)))
SEER_OP(leScalar, at::le(a.t(0), a.s(1)))
SEER_OP(gtScalar, at::gt(a.t(0), a.s(1)))
SEER_OP(geScalar, at::ge(a.t(0), a.s(1)))
SEER_OP(logicalNot, at::logical_not(a.t(0)))
SEER_OP(logicalAnd, at::logical_and(a.t(0), a.t(1)))
SEER_OP(logicalOr, at::logical_or(a.t(0), a.t(1)))
SEER_OP(isfinite, at::isfinite(a.t(0)))

// ---- reductions ------------------------------------------------------------------------------------------------
// Reductions over dims take (t, dims, keepdim); an empty dims array reduces over everything.

SEER_OP(sum, a.ints(1).empty() ? at::sum(a.t(0)) : at::sum(a.t(0), a.ints(1), a.b(2)))
SEER_OP(mean, a.ints(1).empty() ? at::mean(a.t(0)) : at::mean(a.t(0), a.ints(1), a.b(2)))
SEER_OP(prod, at::prod(a.t(0)))
// var/std(t, dims, unbiased, keepdim)
SEER_OP(var, at::var(a.t(0), at::OptionalIntArrayRef(a.ints(1)), a.b(2), a.b(3)))
SEER_OP(std, at::std(a.t(0), at::OptionalIntArrayRef(a.ints(1)), a.b(2), a.b(3)))
// norm(t, p, dims, keepdim)
SEER_OP(norm, at::norm(a.t(0), a.d(1), a.ints(2), a.b(3)))
SEER_OP(logsumexp, at::logsumexp(a.t(0), a.ints(1), a.b(2)))
SEER_OP(amax, at::amax(a.t(0), a.ints(1), a.b(2)))
SEER_OP(amin, at::amin(a.t(0), a.ints(1), a.b(2)))
SEER_OP(maxAll, at::max(a.t(0)))
SEER_OP(minAll, at::min(a.t(0)))
SEER_FN(maxDim) {
  auto r = at::max(a.t(0), a.i64(1), a.b(2));
  return seer::wrapList(a.env, {std::get<0>(r), std::get<1>(r)});
}
SEER_FN(minDim) {
  auto r = at::min(a.t(0), a.i64(1), a.b(2));
  return seer::wrapList(a.env, {std::get<0>(r), std::get<1>(r)});
}
SEER_OP(argmax, at::argmax(a.t(0), a.i64(1), a.b(2)))
SEER_OP(argmin, at::argmin(a.t(0), a.i64(1), a.b(2)))
SEER_OP(cumsum, at::cumsum(a.t(0), a.i64(1)))
SEER_OP(all, at::all(a.t(0)))
SEER_OP(any, at::any(a.t(0)))
// topk(t, k, dim, largest, sorted) -> [values, indices]
SEER_FN(topk) {
  auto r = at::topk(a.t(0), a.i64(1), a.i64(2), a.b(3), a.b(4));
  return seer::wrapList(a.env, {std::get<0>(r), std::get<1>(r)});
}
// sort(t, dim, descending) -> [values, indices]
SEER_FN(sort) {
  auto r = at::sort(a.t(0), a.i64(1), a.b(2));
  return seer::wrapList(a.env, {std::get<0>(r), std::get<1>(r)});
}

// ---- linear algebra --------------------------------------------------------------------------------------------

SEER_OP(matmul, at::matmul(a.t(0), a.t(1)))
SEER_OP(mm, at::mm(a.t(0), a.t(1)))
SEER_OP(bmm, at::bmm(a.t(0), a.t(1)))
SEER_OP(addmm, at::addmm(a.t(0), a.t(1), a.t(2), a.s(3), a.s(4)))
SEER_OP(outer, at::outer(a.t(0), a.t(1)))
SEER_OP(linear, at::linear(a.t(0), a.t(1), a.optT(2)))
SEER_OP(einsum, at::einsum(a.str(0), a.tensors(1)))

// ---- random sampling (all drawn from the generator that manualSeed seeds) -------------------------------------

SEER_OP(bernoulli, at::bernoulli(a.t(0)))
SEER_OP(bernoulliScalar, at::bernoulli(a.t(0), a.d(1)))
SEER_OP(multinomial, at::multinomial(a.t(0), a.i64(1), a.b(2)))
SEER_INPLACE(uniform_, a.t(0).uniform_(a.d(1), a.d(2)))
SEER_INPLACE(normal_, a.t(0).normal_(a.d(1), a.d(2)))

// ---- in-place (optimizers, initializers, buffers) -------------------------------------------------------------

SEER_INPLACE(zero_, a.t(0).zero_())
SEER_INPLACE(fill_, a.t(0).fill_(a.s(1)))
SEER_INPLACE(add_, a.t(0).add_(a.t(1), a.s(2)))
SEER_INPLACE(addScalar_, a.t(0).add_(a.s(1)))
SEER_INPLACE(mul_, a.t(0).mul_(a.t(1)))
SEER_INPLACE(mulScalar_, a.t(0).mul_(a.s(1)))
SEER_INPLACE(div_, a.t(0).div_(a.t(1)))
SEER_INPLACE(divScalar_, a.t(0).div_(a.s(1)))
SEER_INPLACE(addcmul_, a.t(0).addcmul_(a.t(1), a.t(2), a.s(3)))
SEER_INPLACE(addcdiv_, a.t(0).addcdiv_(a.t(1), a.t(2), a.s(3)))
SEER_INPLACE(lerp_, a.t(0).lerp_(a.t(1), a.d(2)))
SEER_INPLACE(clamp_, a.t(0).clamp_(a.optScalar(1), a.optScalar(2)))
SEER_INPLACE(sqrt_, a.t(0).sqrt_())
SEER_INPLACE(relu_, a.t(0).relu_())

// ---- multi-tensor (ATen's _foreach_* ops) -----------------------------------------------------------------------
// One call over lists of tensors, as torch.optim's foreach implementations use: on CUDA, tensors of one device and
// dtype whose shapes and strides match pairwise go through a few multi-tensor kernels instead of a kernel each;
// otherwise (the CPU, lists of 0-d factors that broadcast) ATen loops over the tensors in C++. One N-API crossing
// for the list either way. Lists must not be empty.

SEER_INPLACE(foreachAdd_, at::_foreach_add_(a.tensors(0), a.tensors(1), a.s(2)))
SEER_INPLACE(foreachMulScalar_, at::_foreach_mul_(a.tensors(0), a.s(1)))
SEER_INPLACE(foreachMul_, at::_foreach_mul_(a.tensors(0), a.tensors(1)))
SEER_FN(foreachMulScalar) { return seer::wrapList(a.env, at::_foreach_mul(a.tensors(0), a.s(1))); }
SEER_FN(foreachMul) { return seer::wrapList(a.env, at::_foreach_mul(a.tensors(0), a.tensors(1))); }
SEER_INPLACE(foreachAddcmul_, at::_foreach_addcmul_(a.tensors(0), a.tensors(1), a.tensors(2), a.s(3)))
SEER_FN(foreachNorm) { return seer::wrapList(a.env, at::_foreach_norm(a.tensors(0), 2)); }

# Oracle for tests/ssl_losses.test.ts. Two independent references for each loss:
#   "naive":    written straight from the papers' pseudocode with Python loops over floats (math.exp / math.log):
#               SwAV Algorithm 1 (Caron et al. 2020, appendix) generalized to multi-crop as in eq. (1)-(2) and
#               §3.2; SimCLR Algorithm 1 / eq. (1) (Chen et al. 2020).
#   "official": direct PyTorch ports of facebookresearch/swav main_swav.py (distributed_sinkhorn, the loss in
#               train()) and of google-research/simclr objective.py add_contrastive_loss (TF ops -> torch).
# args.mode: "sinkhorn" | "swav_loss" | "ntxent". Inputs and outputs go through exchange.py.
import math
import numpy as np
import torch
import torch.nn.functional as F
from exchange import load, save


# ---------------------------------------------------------------- naive references (loops) ----

def naive_sinkhorn(scores, eps, niters):
    """SwAV Algorithm 1's sinkhorn(scores, eps, niters), element by element. scores: list of B rows of K floats."""
    B, K = len(scores), len(scores[0])
    Q = [[math.exp(scores[b][k] / eps) for b in range(B)] for k in range(K)]  # K x B  (Q = exp(scores/eps).T)
    total = sum(sum(row) for row in Q)
    Q = [[x / total for x in row] for row in Q]
    r, c = [1.0 / K] * K, [1.0 / B] * B
    for _ in range(niters):
        u = [sum(Q[k]) for k in range(K)]                       # u = sum(Q, dim=1)
        Q = [[Q[k][b] * r[k] / u[k] for b in range(B)] for k in range(K)]
        col = [sum(Q[k][b] for k in range(K)) for b in range(B)]
        Q = [[Q[k][b] * c[b] / col[b] for b in range(B)] for k in range(K)]
    col = [sum(Q[k][b] for k in range(K)) for b in range(B)]
    return [[Q[k][b] / col[b] for k in range(K)] for b in range(B)]  # (Q / sum(Q, dim=0)).T : B x K


def naive_swav_loss(scores, bs, ncrops, crops_for_assign, temp, eps, niters, queue_scores):
    """Multi-crop swapped prediction: for each assignment crop a, mean over v != a of
    mean_b -sum_k q_a[b,k] log softmax(scores_v[b] / temp)_k; then mean over a. The queue is appended after the
    batch and the first bs codes kept."""
    rows = scores.tolist()
    crop = lambda v: rows[v * bs:(v + 1) * bs]
    total = 0.0
    for j, a in enumerate(crops_for_assign):
        extra = queue_scores[j].tolist() if queue_scores is not None else []
        q = naive_sinkhorn(crop(a) + extra, eps, niters)[:bs]
        sub = 0.0
        others = [v for v in range(ncrops) if v != a]
        for v in others:
            ce = 0.0
            for b, s in enumerate(crop(v)):
                x = [si / temp for si in s]
                m = max(x)
                lse = m + math.log(sum(math.exp(xi - m) for xi in x))
                ce += -sum(q[b][k] * (x[k] - lse) for k in range(len(x)))
            sub += ce / bs
        total += sub / len(others)
    return total / len(crops_for_assign)


def naive_ntxent(z, temp):
    """SimCLR Algorithm 1: z rows 0..N-1 are view 1, N..2N-1 view 2 (pairs (k, k+N)); cosine similarities;
    l(i,j) = -log exp(s_ij/t) / sum_{k != i} exp(s_ik/t); L = 1/(2N) sum over both orders of every pair."""
    rows = z.tolist()
    n2 = len(rows)
    N = n2 // 2
    norm = [math.sqrt(sum(x * x for x in r)) for r in rows]
    sim = [[sum(a * b for a, b in zip(rows[i], rows[j])) / (norm[i] * norm[j]) for j in range(n2)] for i in range(n2)]

    def l(i, j):
        denom = sum(math.exp(sim[i][k] / temp) for k in range(n2) if k != i)
        return -math.log(math.exp(sim[i][j] / temp) / denom)

    return sum(l(k, k + N) + l(k + N, k) for k in range(N)) / (2 * N)


# ---------------------------------------------------------------- official ports ----

def distributed_sinkhorn(out, epsilon, sinkhorn_iterations, world_size=1):
    # facebookresearch/swav main_swav.py, with dist.all_reduce a no-op (one worker).
    Q = torch.exp(out / epsilon).t()  # Q is K-by-B for consistency with notations from our paper
    B = Q.shape[1] * world_size  # number of samples to assign
    K = Q.shape[0]  # how many prototypes
    # make the matrix sums to 1
    sum_Q = torch.sum(Q)
    Q /= sum_Q
    for it in range(sinkhorn_iterations):
        # normalize each row: total weight per prototype must be 1/K
        sum_of_rows = torch.sum(Q, dim=1, keepdim=True)
        Q /= sum_of_rows
        Q /= K
        # normalize each column: total weight per sample must be 1/B
        Q /= torch.sum(Q, dim=0, keepdim=True)
        Q /= B
    Q *= B  # the colomns must sum to 1 so that Q is an assignment
    return Q.t()


def official_swav_loss(output, bs, nmb_crops_total, crops_for_assign, temperature, epsilon, iters, queue_scores):
    # main_swav.py train(): the loss part. The queue scores (torch.mm(queue[i], prototypes.weight.t())) are given.
    loss = 0
    for i, crop_id in enumerate(crops_for_assign):
        with torch.no_grad():
            out = output[bs * crop_id: bs * (crop_id + 1)].detach()
            if queue_scores is not None:
                out = torch.cat((queue_scores[i], out))
            q = distributed_sinkhorn(out, epsilon, iters)[-bs:]
        subloss = 0
        for v in np.delete(np.arange(nmb_crops_total), crop_id):
            x = output[bs * v: bs * (v + 1)] / temperature
            subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
        loss += subloss / (nmb_crops_total - 1)
    loss /= len(crops_for_assign)
    return loss


LARGE_NUM = 1e9


def simclr_contrastive_loss(hidden, temperature, hidden_norm=True):
    # google-research/simclr objective.py add_contrastive_loss, one replica, TF ops written with torch.
    if hidden_norm:
        hidden = F.normalize(hidden, dim=-1)  # tf.math.l2_normalize
    hidden1, hidden2 = torch.split(hidden, hidden.shape[0] // 2, 0)
    batch_size = hidden1.shape[0]
    hidden1_large, hidden2_large = hidden1, hidden2
    labels = F.one_hot(torch.arange(batch_size), batch_size * 2).to(hidden.dtype)
    masks = F.one_hot(torch.arange(batch_size), batch_size).to(hidden.dtype)
    logits_aa = hidden1 @ hidden1_large.t() / temperature - masks * LARGE_NUM
    logits_bb = hidden2 @ hidden2_large.t() / temperature - masks * LARGE_NUM
    logits_ab = hidden1 @ hidden2_large.t() / temperature
    logits_ba = hidden2 @ hidden1_large.t() / temperature
    # tf.losses.softmax_cross_entropy(labels, logits): mean over the batch of -sum labels * log_softmax
    ce = lambda logits: -(labels * F.log_softmax(logits, dim=1)).sum(1).mean()
    loss_a = ce(torch.cat([logits_ab, logits_aa], 1))
    loss_b = ce(torch.cat([logits_ba, logits_bb], 1))
    return loss_a + loss_b


def main():
    inputs, args = load()
    mode = args["mode"]
    out = {}
    if mode == "sinkhorn":
        # One case per entry of args.cases, scores in inputs["scores<i>"]; outputs suffixed <i>.
        for i, case in enumerate(args["cases"]):
            s, eps, iters = inputs[f"scores{i}"], case["epsilon"], case["iterations"]
            out[f"official{i}"] = distributed_sinkhorn(s.clone(), eps, iters)
            out[f"official64_{i}"] = distributed_sinkhorn(s.double(), eps, iters)
            out[f"naive{i}"] = torch.tensor(naive_sinkhorn(s.double().tolist(), eps, iters), dtype=torch.float64)
    elif mode == "swav_loss":
        common = (args["batchSize"], args["numCrops"], args["cropsForAssign"], args["temperature"], args["epsilon"], args["iterations"])
        queues = lambda suffix: [inputs[f"queue{j}{suffix}"] for j in range(len(args["cropsForAssign"]))] if "queue0" in inputs else None
        s = inputs["scores"].clone().requires_grad_(True)
        qs = queues("")
        loss = official_swav_loss(s, *common, qs)
        loss.backward()
        naive = naive_swav_loss(s.detach().double(), *common, [q.double() for q in qs] if qs else None)
        out.update({"official": loss, "grad": s.grad, "naive": torch.tensor(naive, dtype=torch.float64)})
        if "scores32" in inputs:
            out["official32"] = official_swav_loss(inputs["scores32"], *common, queues("_32"))
    elif mode == "ntxent":
        z = inputs["z"].clone().requires_grad_(True)
        tf_loss = simclr_contrastive_loss(z, args["temperature"])
        (tf_loss / 2).backward()
        naive = naive_ntxent(z.detach().double(), args["temperature"])
        out.update({"simclr_tf": tf_loss, "grad_half": z.grad, "naive": torch.tensor(naive, dtype=torch.float64)})
        if "z32" in inputs:
            out["simclr_tf32"] = simclr_contrastive_loss(inputs["z32"], args["temperature"])
    else:
        raise SystemExit(f"unknown mode {mode}")
    save(out)


if __name__ == "__main__":
    main()

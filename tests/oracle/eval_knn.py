# Oracle for tests/eval_knn.test.ts: weighted kNN two ways, in float64.
#   "naive": one test row at a time with Python loops, straight from the InstDisc rule (Wu et al. 2018, §3.4):
#            cosine similarity to every train row, the k largest, vote_c = sum of exp(s / T) (or 1) over neighbours
#            of class c; ranking with ties by lower class index, a zero-vote class never a hit.
#   "dino":  facebookresearch/dino eval_knn.py knn_classifier, vectorized as written there (mm, topk, one-hot
#            scatter, exp(d / T), sort); only its top-1 is compared (its top-5 leaves zero-vote ties to torch.sort).
# args: k, temperature, num_classes, vote ("weighted" | "majority").
import math
import torch
import torch.nn.functional as F
from exchange import load, save

inputs, args = load()
train, train_labels = inputs["train"].double(), inputs["train_labels"]
test, test_labels = inputs["test"].double(), inputs["test_labels"]
k, T, C, vote = args["k"], args["temperature"], args["num_classes"], args["vote"]


def norm(row):
    n = math.sqrt(sum(x * x for x in row))
    return [x / max(n, 1e-12) for x in row]


tr = [norm(r) for r in train.tolist()]
trl = train_labels.tolist()
preds, hits1, hits5 = [], 0, 0
for row, y in zip(test.tolist(), test_labels.tolist()):
    q = norm(row)
    sims = [(sum(a * b for a, b in zip(q, t)), i) for i, t in enumerate(tr)]
    sims.sort(key=lambda p: -p[0])
    votes = [0.0] * C
    for s, i in sims[:k]:
        votes[trl[i]] += math.exp(s / T) if vote == "weighted" else 1.0
    best = max(range(C), key=lambda c: (votes[c], -c))
    rank = sum(1 for c in range(C) if votes[c] > votes[y] or (votes[c] == votes[y] and c < y))
    preds.append(best)
    hit = votes[y] > 0
    hits1 += int(hit and rank == 0)
    hits5 += int(hit and rank < 5)

# DINO's knn_classifier (eval_knn.py), one chunk.
train_features = F.normalize(train, dim=1).t()
features = F.normalize(test, dim=1)
similarity = torch.mm(features, train_features)
distances, indices = similarity.topk(k, largest=True, sorted=True)
candidates = train_labels.view(1, -1).expand(test.shape[0], -1)
retrieved_neighbors = torch.gather(candidates, 1, indices)
retrieval_one_hot = torch.zeros(test.shape[0] * k, C, dtype=torch.float64)
retrieval_one_hot.scatter_(1, retrieved_neighbors.view(-1, 1), 1)
distances_transform = distances.clone().div_(T).exp_()
probs = torch.sum(torch.mul(retrieval_one_hot.view(test.shape[0], -1, C), distances_transform.view(test.shape[0], -1, 1)), 1)
_, predictions = probs.sort(1, True)

save({
    "predictions": torch.tensor(preds, dtype=torch.int64),
    "counts": torch.tensor([hits1, hits5], dtype=torch.int64),
    "dino_predictions": predictions[:, 0].contiguous(),
})

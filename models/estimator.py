"""``DeepClusterer``: every method behind one scikit-learn estimator."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

from . import persistence
from .k_estimation import DEFAULT_CRITERION, DEFAULT_K_RANGE, K_CRITERIA, KSelection, estimate_k
from .phases import PRETRAIN
from .methods import get_method, param_names
from .networks import check_network
from .preprocessing import Scaler
from .restarts import check_selection, fit_restarts
from .training import Run, accel, embed_all, predict_soft, train
from .training.callbacks import CallbackList
from .training.data import ArrayData, as_tensor, inference_chunk
from .training.device import resolve_device, resolve_seed
from .training.guard import check_guard, result_report
from .training.memory import return_large_blocks

_BASE_PARAMS = ("method", "n_clusters", "random_state", "device", "scaling", "n_restarts", "selection",
                "k_range", "k_criterion", "guard")
INFERENCE_CHUNK = 4096  # rows per forward pass at inference on the CPU: ArrayData.chunks' default there


class DeepClusterer(TransformerMixin, ClusterMixin, BaseEstimator):
    """Deep clustering with the method of your choice (k-means, DEC, IDEC, CDC, DCCF, ...).

    Parameters
    ----------
    method : str, default="dec"
        A registered method name; ``models.list_methods()`` lists them with their params.
    n_clusters : int or "auto", default=8
        Number of clusters K, at least 2 and at most the number of samples. ``"auto"``: after
        pretraining, K is estimated in the pretrained embedding without labels
        (``models.k_estimation.estimate_k`` over ``k_range`` by ``k_criterion``; k-means: in the
        scaled input), then training goes on at that K; ``k_selection_`` shows the evidence.
    random_state : int, RandomState instance or None, default=None
        Seeds weight init, batch order and k-means. The same seed gives the same labels on CPU.
    device : str, default="auto"
        ``"auto"`` trains on CUDA when available, else CPU; or ``"cpu"``, ``"cuda:0"``.
    scaling : {"auto", "none", "divide255", "minmax", "standard"}, default="auto"
        Input scaling fitted with the model and replayed by predict/transform. ``"auto"``
        divides uint8 input (8-bit images) by 255 and leaves everything else as it is.
    n_restarts : int, default=1
        Train this many runs, with seeds ``random_state, random_state + 1, ...``, and keep the
        one ``selection`` picks, without labels (see ``models.selection``). Deep clustering is
        seed-fragile; the chosen run does not hinge on one lucky or unlucky seed.
    selection : str, default="stability"
        How restarts are chosen: ``"stability"`` keeps the medoid run, the one agreeing most
        (mean pairwise ARI) with the others; a criterion name (``"silhouette"``,
        ``"calinski_harabasz"``, ``"davies_bouldin"`` in the embedding, or ``input_`` + one of
        them on the input) keeps the run with its best value.
    k_range : (int, int), default=(2, 30)
        The K's ``n_clusters="auto"`` considers (inclusive), bounded by ``n_samples - 1``.
    k_criterion : str, default="stadion"
        The criterion of ``n_clusters="auto"``: one of ``models.k_estimation.K_CRITERIA``.
    guard : {"restore", "warn", "off"}, default="restore"
        The guard against degenerate clusterings (``models.training.guard``): after every epoch
        of a clustering phase, fewer than K non-empty clusters or one cluster over half of the
        data (K > 2) ends the phase on its last healthy state (``"restore"``), or is only
        reported (``"warn"``); ``"off"`` does not look.
    **params
        The method's own parameters (e.g. ``pretrain_epochs``, ``maxiter``, ``gamma``), with the
        defaults of its paper. Unknown or out-of-range ones raise ``InvalidParams`` at ``fit``.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of each training sample, ``argmax`` of its soft assignment.
    confidences_ : ndarray of shape (n_samples,)
        The largest soft assignment of each training sample.
    cluster_centers_ : ndarray of shape (n_clusters, d)
        Centres in the embedding (``centers_space_ == "embedding"``) or input space (k-means).
        For a method whose network has no centres (a softmax head), the mean embedding of each
        cluster's training samples (zeros for an empty cluster).
    n_features_in_ : int
        Number of input features (pixels for images).
    sample_shape_ : tuple
        Shape of one training sample, ``(D,)`` or ``(C, H, W)``.
    history_ : list of dict
        One row per epoch: ``phase``, ``epoch``, ``loss`` and each loss term.
    model_ : torch.nn.Module
        The trained network with its centres.
    restarts_ : list of dict
        Only with ``n_restarts > 1``: one row per restart (``seed``, every criterion,
        ``stability`` = its mean ARI with the others, ``selected``).
    restart_seed_ : int
        Only with ``n_restarts > 1``: the chosen restart's seed (refits it alone).
    n_clusters_ : int
        The K trained (``n_clusters``, or the estimate of ``n_clusters="auto"``).
    k_selection_ : KSelection or None
        With ``n_clusters="auto"``: ``criterion``, ``chosen`` and ``table`` (one row per K).
    health_ : dict
        ``nonempty_clusters``, ``largest_cluster_fraction``, ``size_entropy`` of the result,
        ``guard`` (``"restored"``, ``"warned"``, ``"off"`` or None) and, when restored,
        ``restored_epoch`` (epochs of the phase done at the restored state; 0: its start).
    warnings_ : list of dict
        ``{"code", "message", "details"}``: ``clusters_emptied``, ``cluster_dominant``,
        ``restored``, ``k_estimated``.
    """

    def __init__(self, method="dec", n_clusters=8, *, random_state=None, device="auto", scaling="auto",
                 n_restarts=1, selection="stability", k_range=DEFAULT_K_RANGE, k_criterion=DEFAULT_CRITERION,
                 guard="restore", **params):
        self.method = method
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.device = device
        self.scaling = scaling
        self.n_restarts = n_restarts
        self.selection = selection
        self.k_range = k_range
        self.k_criterion = k_criterion
        self.guard = guard
        self._params = dict(params)

    # -- scikit-learn parameter protocol, extended with the method's own params -----------------
    def __getattr__(self, name):
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        # ``est.maxiter = 5`` is ``set_params(maxiter=5)``: any registered method's param name
        # goes to the method params (an unknown one for this method fails at fit, loudly).
        if name in param_names() and name not in _BASE_PARAMS:
            self._params[name] = value
        else:
            object.__setattr__(self, name, value)

    def get_params(self, deep=True):
        return {**{name: getattr(self, name) for name in _BASE_PARAMS}, **self._params}

    def set_params(self, **params):
        for name, value in params.items():
            if name in _BASE_PARAMS:
                setattr(self, name, value)
            else:
                self._params[name] = value
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # the networks compute in float32
        return tags

    # -- training ---------------------------------------------------------------------------------
    def fit(self, X, y=None, *, callbacks=None, pretrained=None, resume_from=None):
        """Train on ``X`` (n_samples, n_features) or images (n_samples, C, H, W).

        ``y`` is ignored (clustering is unsupervised). ``callbacks`` receive progress and
        checkpoints and can stop training (``TrainingCancelled``). ``pretrained`` is a fitted
        ``DeepClusterer`` (or its ``pretrained_state_``) whose pretrained autoencoder is reused.
        ``resume_from`` is a checkpoint state handed to a callback earlier. With
        ``n_restarts > 1`` every restart reports to the callbacks in turn (and reuses
        ``pretrained``), and ``resume_from`` is refused.
        """
        return_large_blocks()  # the full-data embeddings' chunks go back to the OS when freed
        check_selection(self.selection)
        check_guard(self.guard)
        if self.n_clusters == "auto" and self.k_criterion not in K_CRITERIA:
            raise ValueError(f"unknown k_criterion {self.k_criterion!r}; choose one of {list(K_CRITERIA)}")
        if self.n_clusters == "auto" and self.n_restarts != 1:
            raise ValueError("n_clusters='auto' estimates K for one run; with n_restarts > 1, estimate K first "
                             "(models.k_estimation.estimate_k) and pass it")
        if self.n_restarts != 1:
            if resume_from is not None:
                raise ValueError("resume_from resumes one run; it cannot be combined with n_restarts > 1")
            return fit_restarts(self, X, callbacks=callbacks, pretrained=pretrained)
        try:
            info = get_method(self.method)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        params = info.cls.parse(self._params)
        X = check_array(X, dtype="numeric", allow_nd=True, ensure_min_samples=2, input_name="X")
        self._check_clusters(len(X))
        kind = "images" if X.ndim > 2 else "features"
        if kind not in info.input_kinds:
            raise ValueError(f"method '{self.method}' does not accept {kind}; it takes {', '.join(info.input_kinds)}")
        if resume_from is not None and resume_from.get("method") != self.method:
            raise ValueError(f"checkpoint is of method {resume_from.get('method')!r}, not {self.method!r}")
        seed = resolve_seed(self.random_state)
        device = resolve_device(self.device)

        with torch.random.fork_rng(devices=[]):
            k_selection, n_clusters = None, self.n_clusters
            if n_clusters == "auto":  # pretraining, then K from the embedding (resumable)
                k_selection, pretrained, resume_from = self._estimate_k(X, info, params, seed, device, callbacks,
                                                                        pretrained, resume_from)
                n_clusters = k_selection.chosen
            torch.manual_seed(seed)
            method = info.cls(params, int(n_clusters), seed)
            model = method.build_model(X.shape[1:]).to(device)
            check_network(model)
            scaler = (Scaler.from_manifest(resume_from["scaler"]) if resume_from is not None
                      else Scaler.fit(X, self.scaling))
            data = ArrayData(X, scaler, device)
            run = Run(CallbackList(callbacks),
                      base_state={"method": self.method, "scaler": scaler.to_manifest()},
                      history=resume_from["history"] if resume_from is not None else None, guard=self.guard)
            if k_selection is not None:
                run.base_state["k_selection"] = k_selection.to_dict()
                if resume_from is None:
                    run.history = list(self._auto_history)
            weights = self._pretrained_weights(pretrained, model)
            if weights is not None:
                model.autoencoder.load_state_dict(weights)
                # Kept with the fitted model and in every checkpoint, for the next reuse.
                run.base_state["pretrained"] = {k: v.detach().cpu().clone()
                                                for k, v in model.autoencoder.state_dict().items()}
            phases = method.phases(len(data), pretrained=weights is not None)
            with accel.training(model, phases, device):  # GPU speed settings; none on the CPU
                train(model, data, phases, run, seed=seed, resume=resume_from)
            q = predict_soft(model, data)
            labels = q.argmax(1).cpu().numpy()
            centers = (model.centers.detach().cpu().numpy().copy() if model.centers is not None
                       else mean_embeddings(model, data, labels, int(n_clusters)))
            health, warnings = result_report(run.guard, labels, int(n_clusters), k_selection)

        self._set_fitted(model, scaler, info.cls.centers_space, X.shape[1:], device,
                         params.model_dump(), run.history, run.base_state.get("pretrained"), centers)
        self.labels_ = labels
        self.confidences_ = q.max(1).values.cpu().numpy()
        self.n_clusters_ = int(n_clusters)
        self.k_selection_ = k_selection
        self.health_ = health
        self.warnings_ = warnings
        return self

    def _estimate_k(self, X, info, params, seed, device, callbacks, pretrained, resume_from):
        """``n_clusters="auto"``: pretrain (or reuse ``pretrained``, or resume the pretraining
        from ``resume_from``), estimate K in the pretrained embedding, and return the selection
        with what the training at that K starts from: ``(k_selection, pretrained, resume_from)``.

        A checkpoint written after the estimate carries it (``k_selection``), so a run resumed
        from one trains at the same K without estimating again."""
        self._auto_history = []
        if resume_from is not None and resume_from.get("k_selection") is not None:
            return KSelection.from_dict(resume_from["k_selection"]), pretrained, resume_from
        torch.manual_seed(seed)
        probe = info.cls(params, 2, seed).build_model(X.shape[1:]).to(device)
        if probe.autoencoder is not None:
            with torch.random.fork_rng(devices=[]):
                other = info.cls(params, 3, seed).build_model(X.shape[1:])
            if {k: v.shape for k, v in other.autoencoder.state_dict().items()} != \
                    {k: v.shape for k, v in probe.autoencoder.state_dict().items()}:
                raise ValueError(f"n_clusters='auto' is not available for method '{self.method}': its pretrained "
                                 "network depends on K; give n_clusters")
        scaler = (Scaler.from_manifest(resume_from["scaler"]) if resume_from is not None
                  else Scaler.fit(X, self.scaling))
        data = ArrayData(X, scaler, device)
        weights = self._pretrained_weights(pretrained, probe)
        if weights is None and probe.autoencoder is not None:
            run = Run(CallbackList(callbacks), base_state={"method": self.method, "scaler": scaler.to_manifest()},
                      history=resume_from["history"] if resume_from is not None else None, guard=self.guard)
            phases = [p for p in info.cls(params, 2, seed).phases(len(data), pretrained=False) if p.name == PRETRAIN]
            with accel.training(probe, phases, device):
                train(probe, data, phases, run, seed=seed, resume=resume_from)
            weights = run.base_state["pretrained"]
            self._auto_history = list(run.history)
        if weights is not None:
            probe.autoencoder.load_state_dict(weights)
            Z = embed_all(probe, data)
        else:  # no network (k-means): the scaled input
            Z = torch.cat(list(data.chunks())).flatten(1).cpu().numpy()
        lo, hi = self._k_bounds()
        selection = estimate_k(Z, (max(2, lo), min(hi, len(X) - 1)), self.k_criterion, seed=seed)
        # as a checkpoint carries it (JSON-able, rounded): a resumed run reports the same table
        selection = KSelection.from_dict(selection.to_dict())
        CallbackList(callbacks).on_k_selected(selection)
        return selection, weights, None

    def fit_predict(self, X, y=None, **fit_params):
        return self.fit(X, **fit_params).labels_

    def _check_clusters(self, n_samples: int) -> None:
        k = self.n_clusters
        if k == "auto":
            lo, hi = self._k_bounds()
            if max(2, lo) > min(hi, n_samples - 1):
                raise ValueError(f"k_range {[lo, hi]} leaves no K in [2, {n_samples - 1}] for {n_samples} samples")
            return
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ValueError(f"n_clusters must be an integer, got {k!r}")
        if k < 2:
            raise ValueError(f"n_clusters must be at least 2, got {k}")
        if k > n_samples:
            raise ValueError(f"n_clusters={k} is more than n_samples={n_samples}")

    def _k_bounds(self) -> tuple[int, int]:
        k_range = self.k_range
        if (isinstance(k_range, (str, bytes)) or not hasattr(k_range, "__len__") or len(k_range) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in k_range)
                or k_range[0] > k_range[1]):
            raise ValueError(f"k_range must be [min, max] with integers min <= max, got {k_range!r}")
        return int(k_range[0]), int(k_range[1])

    def _pretrained_weights(self, pretrained, model) -> dict | None:
        if pretrained is None:
            return None
        if model.autoencoder is None:
            raise ValueError(f"method '{self.method}' has no autoencoder to reuse")
        state = pretrained
        if isinstance(pretrained, DeepClusterer):
            check_is_fitted(pretrained)
            state = pretrained.pretrained_state_
            if state is None:
                raise ValueError("the pretrained model carries no autoencoder")
        expected = {k: tuple(v.shape) for k, v in model.autoencoder.state_dict().items()}
        given = {k: tuple(v.shape) for k, v in state.items()}
        diff = sorted(k for k in expected.keys() | given.keys() if expected.get(k) != given.get(k))
        if diff:
            raise ValueError(f"the pretrained autoencoder does not fit this model: {diff[0]} has shape "
                             f"{given.get(diff[0])}, this model needs {expected.get(diff[0])}")
        return state

    def _set_fitted(self, model, scaler, centers_space, sample_shape, device, params, history, pretrained, centers):
        self.model_ = model
        self.scaler_ = scaler
        self.centers_space_ = centers_space
        self.sample_shape_ = tuple(int(s) for s in sample_shape)
        self.n_features_in_ = int(np.prod(self.sample_shape_))
        self.device_ = device
        self.params_ = params
        self.history_ = list(history)
        self.pretrained_state_ = pretrained
        self.cluster_centers_ = centers

    # -- inference --------------------------------------------------------------------------------
    def __sklearn_is_fitted__(self) -> bool:
        return "model_" in self.__dict__

    def _checked_input(self, X) -> np.ndarray:
        """``X`` validated as ``check_array`` would, shaped like the training samples.

        A finite float ndarray -- what predict gets nearly always -- is taken as it is: the
        general validation costs more than a one-row forward pass."""
        if not (type(X) is np.ndarray and X.dtype.kind == "f" and X.ndim >= 2 and X.size
                and np.isfinite(X).all()):
            X = check_array(X, dtype="numeric", allow_nd=True, input_name="X")
        if X.shape[1:] != self.sample_shape_:
            width = int(np.prod(X.shape[1:]))
            if X.ndim != 2 or width != self.n_features_in_:
                raise ValueError(f"X has {width} features, but {type(self).__name__} is expecting "
                                 f"{self.n_features_in_} features as input.")
            X = X.reshape(len(X), *self.sample_shape_)  # flattened images
        return X

    @torch.no_grad()
    def _infer(self, X, what: str) -> np.ndarray:
        if "model_" not in self.__dict__:
            check_is_fitted(self)  # raises NotFittedError
        X = self._checked_input(X)
        if self.model_.training:
            self.model_.eval()
        chunk = inference_chunk(self.device_, self.n_features_in_)  # 4096 rows on the CPU, more on a GPU
        if len(X) <= chunk and type(X) is np.ndarray:
            # One chunk, as ArrayData.chunks would give it: the same operations on the same rows.
            x = self.scaler_(as_tensor(X).to(device=self.device_, dtype=torch.float32))
            return self._forward(x, what).cpu().numpy()
        data = ArrayData(X, self.scaler_, self.device_)
        return torch.cat([self._forward(x, what) for x in data.chunks(chunk)]).cpu().numpy()

    def _forward(self, x: torch.Tensor, what: str) -> torch.Tensor:
        z = self.model_.embed(x)
        return z if what == "embedding" else self.model_.soft_assign(z)

    def predict_proba(self, X) -> np.ndarray:
        """Soft assignments, shape (n_samples, n_clusters); rows sum to 1."""
        return self._infer(X, "proba")

    def predict(self, X) -> np.ndarray:
        """The most likely cluster of each sample."""
        return self.predict_proba(X).argmax(1)

    def transform(self, X) -> np.ndarray:
        """The embedding of each sample (the scaled input itself for k-means)."""
        return self._infer(X, "embedding")

    # -- persistence without pickle ------------------------------------------------------------
    def to_bytes(self) -> tuple[bytes, dict]:
        """Safetensors weights and a JSON-able manifest that rebuild this model exactly."""
        check_is_fitted(self)
        return persistence.dump(self)

    @classmethod
    def from_bytes(cls, weights: bytes, manifest: dict, device: str = "auto") -> "DeepClusterer":
        return persistence.restore(cls, weights, manifest, device)

    def save(self, path) -> None:
        """Write ``model.safetensors`` and ``manifest.json`` into the directory ``path``."""
        check_is_fitted(self)
        persistence.save_dir(self, path)

    @classmethod
    def load(cls, path, device: str = "auto") -> "DeepClusterer":
        """From what ``save`` wrote, or from the service's model download (the zip itself)."""
        return persistence.load_dir(cls, path, device)



def mean_embeddings(model, data: ArrayData, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """The centre of each cluster for a network without centres: its samples' mean embedding."""
    z = embed_all(model, data)
    centers = np.zeros((n_clusters, z.shape[1]), dtype=np.float32)
    for k in range(n_clusters):
        members = z[labels == k]
        if len(members):
            centers[k] = members.mean(0)
    return centers

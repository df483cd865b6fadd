"""Load scikit-learn models from untrusted files without running the file's code.

Supported inputs (detected by content, never by file name):

* joblib files (``joblib.dump``), uncompressed or compressed with zlib, gzip,
  bz2, lzma or xz (lz4 too when the ``lz4`` package is installed);
* plain pickles (protocols 0-5) that were not written by joblib;
* skops files (``skops.io.dump``).

Pickle-based files are read by :class:`_RestrictedUnpickler`, a subclass of
joblib's own ``NumpyUnpickler`` (so joblib's inline array format and its
compressors keep working) whose ``find_class`` only admits the globals on an
explicit allowlist (see the ``allowlist`` module).  It also restricts what may
be *called* while loading (constructors and reconstruction helpers only),
guards the opcodes that call methods on objects (BUILD, APPEND(S),
SETITEM(S), ADDITEMS), rebuilds numpy dtypes through the public constructor
instead of ``dtype.__setstate__``, reads joblib's object arrays with itself
rather than a plain unpickler, and counts decompressed bytes.  Nothing in
this package ever calls ``pickle.load``, ``joblib.load`` or
``numpy.load(allow_pickle=True)``.

skops files are first audited with ``skops.io.get_untrusted_types`` and then
loaded with an explicit ``trusted=[...]`` list computed from the same
allowlist, after checking how each node of the file uses each type
(``trusted=True`` is never used).

After loading, both formats go through the same structural checks of the
native data structures that scikit-learn's Cython code indexes without
bounds checks (decision trees and forests, (hist) gradient boosting, KD/Ball
trees and neighbors, k-means, libsvm models, sparse matrices, splines,
random states: MT19937 and Philox positions) and of stored callables/keyword arguments.  A tampered index
there cannot run code at load time but could crash the process or read
memory it should not at predict time.

Layout of this package (each module can be read in one sitting):

* ``errors``        -- ModelLoadError, UnsafeModelError, LoadedModel and the
                       small helpers that phrase errors;
* ``formats``       -- detect_format (by content);
* ``allowlist``     -- the admitted globals and the reasoning behind them;
* ``policy``        -- the admission rules (``_Policy``), is_admitted_global;
* ``load_helpers``  -- what may be *called* while loading, checked wrappers;
* ``reader``        -- the byte budget on the decompressed stream, the
                       nesting-depth budget, and releasing a refused load
                       without recursion;
* ``numpy_state``   -- validation of array/dtype states given to BUILD;
* ``unpickler``     -- the restricted unpickler, joblib's array wrapper,
                       reading a joblib/pickle file;
* ``skops``         -- auditing and loading skops files;
* ``checks``, ``checks_trees``, ``checks_native``
                    -- the structural checks after loading, and the
                       settings forced at load (n_jobs=1, memory=None);
* ``checks_callables`` -- what a model may store to be called later (an
                       explicit list, with the keyword arguments each takes);
* ``boost``         -- LightGBM, XGBoost and imbalanced-learn models (the
                       optional ``boost`` extra): what is admitted, their
                       boosters' checks, one thread;
* ``loader``        -- load_model, which ties these together, and refuses
                       models that cannot score new rows (no predict/transform).

This package only imports the standard library, numpy, scipy, scikit-learn,
joblib and skops (and LightGBM, XGBoost or imbalanced-learn when a model file
names them and they are installed).
"""

from .checks import ADJUSTED
from .errors import LoadedModel, ModelFormat, ModelLoadError, UnsafeModelError
from .formats import detect_format
from .loader import DEFAULT_MAX_DECOMPRESSED_BYTES, load_model
from .policy import is_admitted_global

__all__ = [
    "ADJUSTED",
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "LoadedModel",
    "ModelLoadError",
    "UnsafeModelError",
    "detect_format",
    "is_admitted_global",
    "load_model",
]

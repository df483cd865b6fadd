"""The bare baseline for bench/predict.py: one Flask endpoint, no auth, no registry, no checks
beyond what building the row needs. It answers the same MLflow-style body as our server with
``predict_proba`` of the same model.

    BENCH_MODEL=model.joblib OMP_NUM_THREADS=1 gunicorn -w 2 -b 127.0.0.1:8002 --chdir bench bare_app:app
"""

import json
import os

import joblib
import numpy as np
from flask import Flask, Response, request

model = joblib.load(os.environ["BENCH_MODEL"])  # our own file, written by bench/predict.py
names = [str(n) for n in model.feature_names_in_]
del model.feature_names_in_  # numpy input, no "X does not have valid feature names" warning
app = Flask(__name__)


@app.post("/predict")
def predict():
    payload = json.loads(request.get_data())
    if "dataframe_split" in payload:
        split = payload["dataframe_split"]
        columns, rows = split["columns"], split["data"]
    else:
        records = payload["dataframe_records"]
        columns, rows = names, [[r[c] for c in names] for r in records]
    if columns != names:  # reorder to the model's column order
        index = [columns.index(n) for n in names]
        rows = [[row[i] for i in index] for row in rows]
    X = np.array(rows, dtype=np.float64)
    proba = model.predict_proba(X)
    return Response(json.dumps({"predictions": proba.tolist()}), mimetype="application/json")

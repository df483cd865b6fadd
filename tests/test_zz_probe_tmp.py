import io, joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression, Ridge

def test_probe(client, auth):
    d = load_iris()
    h = auth.bearer("scientist")
    for m in (LogisticRegression(max_iter=300).fit(d.data, d.target), Ridge().fit(d.data, d.target)):
        b = io.BytesIO(); joblib.dump(m, b)
        r = client.post("/api/v1/models", headers=h, content_type="multipart/form-data", data={"file": (io.BytesIO(b.getvalue()), "m.joblib"), "name": "iris"})
        print(r.status_code)
    r = client.post("/api/v1/models/iris/versions/0/predict", headers=h, json={"instances": [[1,2,3,4]]})
    print("v0 predict", r.status_code, r.get_json())
    r = client.get("/v2/models/iris/versions/0", headers=h)
    print("v2 v0", r.status_code, r.get_json())
    r = client.put("/api/v1/models/iris/aliases/prod%0A", headers=h, json={"version": 1})
    print("alias nl", r.status_code, r.get_json())
    print(client.get("/api/v1/models/iris", headers=h).get_json()["aliases"])
    r = client.put("/api/v1/models/iris/aliases/prod", headers=h, json={"version": 1})
    r = client.post("/api/v1/models/iris@prod/predict", headers=h, json={"instances": [[1,2,3,4]]})
    print("alias predict", r.status_code, r.get_json())
    r = client.get("/api/v1/models/iris%00x", headers=h)
    print("nul", r.status_code)
    r = client.get("/api/v1/jobs/a%00b", headers=h)
    print("nul job", r.status_code)

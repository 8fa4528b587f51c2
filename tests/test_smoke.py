def test_append_and_read(api, conversation):
    cid = conversation["id"]
    r = api.post(f"/v1/conversations/{cid}/messages", json={"role": "user", "content": "hi"})
    assert r.status_code == 201
    assert r.json()["seq"] == 1
    r = api.get(f"/v1/conversations/{cid}/messages")
    assert [m["content"] for m in r.json()["data"]] == ["hi"]

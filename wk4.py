import asyncio, json, sys, time, httpx, websockets
port = sys.argv[1]
ADM = {"Authorization": "Bearer admin-key-1"}
W = {"Authorization": "Bearer worker-key-1"}
SK = {"app": "ext", "skill": "sil", "description": "d", "mode": "quick", "input_schema": {"type": "object"}, "max_requests": 3, "timeout": 30}
async def main():
    c = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=ADM, timeout=20)
    url = f"ws://127.0.0.1:{port}/api/v1/workers/ws"
    ws1 = await websockets.connect(url, subprotocols=["skillwire.worker.v1"], additional_headers=W)
    await ws1.send(json.dumps({"op": "hello", "ref": "h", "name": "silent", "concurrency": 1, "skills": [SK]}))
    print(await ws1.recv())
    ws2 = await websockets.connect(url, subprotocols=["skillwire.worker.v1"], additional_headers=W)
    r = await c.post("/api/v1/apps/ext/sil", json={"requests": [{}]}, headers={**ADM, "Prefer": "respond-async"})
    tid = r.json()["task_id"]
    t0 = time.monotonic(); seen1 = []
    try:
        while True:
            seen1 += [json.loads(l)["op"] for l in (await asyncio.wait_for(ws1.recv(), 8)).split("\n")]
    except (asyncio.TimeoutError, websockets.ConnectionClosed) as e:
        print("ws1 ended", type(e).__name__, getattr(ws1.close_code, "real", ws1.close_code), round(time.monotonic()-t0,1), seen1)
    await ws2.send(json.dumps({"op": "hello", "ref": "h", "name": "b", "concurrency": 1, "skills": [SK]}))
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        m = [json.loads(l) for l in (await asyncio.wait_for(ws2.recv(), 6)).split("\n")]
        for x in m:
            if x["op"] == "work":
                print("ws2 got", x["attempt"]); await ws2.send(json.dumps({"op": "completed", "work_id": x["work_id"]})); deadline = 0
            elif x["op"] == "heartbeat": hb = x
    print("hb", hb)
    print((await c.get(f"/api/v1/tasks/{tid}?wait=5")).json()["status"])
asyncio.run(main())

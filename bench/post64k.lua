-- wrk script for the echo workload: every request is a POST of a 64 KiB
-- body (65,536 bytes); wrk adds the Content-Length header itself.
wrk.method = "POST"
wrk.body = string.rep("0123456789abcdef", 4096)
wrk.headers["Content-Type"] = "application/octet-stream"

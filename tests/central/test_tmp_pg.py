def test_x(postgres_server):
    import subprocess
    subprocess.run(["/work/main/.venv/bin/python","/tmp/pgt.py",postgres_server.url()])

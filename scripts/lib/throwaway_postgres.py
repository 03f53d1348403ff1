"""A throwaway PostgreSQL cluster on a free loopback port, for the benchmark scripts (the test command has its own,
in scripts/test). Needs Debian's postgresql package; run as root, initdb and pg_ctl run as the postgres user.

    with ThrowawayPostgres() as pg:
        url = pg.create_database("bench")   # postgres://postgres@127.0.0.1:PORT/bench
"""
import glob, os, shutil, socket, subprocess, tempfile


class ThrowawayPostgres:
    def __init__(self, settings=None):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(path.split("/")[-2]))
        if not bins:
            raise SystemExit("PostgreSQL is not installed: apt-get install -y postgresql")
        self.bin = bins[-1]
        self.settings = settings or {}
        self.directory = None
        self.port = None

    def _as_postgres(self, *command, **kwargs):
        if os.geteuid() == 0:
            command = ("runuser", "-u", "postgres", "--") + command
        return subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)

    def pg_ctl(self, *arguments):
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        for name, value in self.settings.items():
            options += f" -c {name}={value}"
        return self._as_postgres(f"{self.bin}/pg_ctl", "-D", f"{self.directory}/data", "-l", f"{self.directory}/server.log", "-o", options,
                                 *arguments)

    def __enter__(self):
        self.directory = tempfile.mkdtemp(prefix="tessera-pg-")
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._as_postgres(f"{self.bin}/initdb", "-D", f"{self.directory}/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.pg_ctl("-w", "-t", "60", "start")
        return self

    def psql(self, sql, database="postgres"):
        return subprocess.run([f"{self.bin}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-v",
                               "ON_ERROR_STOP=1", "-qAtc", sql], check=True, capture_output=True, text=True).stdout

    def create_database(self, name):
        self.psql(f"CREATE DATABASE {name}")
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def __exit__(self, *exc):
        try:
            self.pg_ctl("-m", "immediate", "-w", "-t", "30", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.directory, ignore_errors=True)

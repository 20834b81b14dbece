"""The nginx configs of the content server and the cache: every variant passes `nginx -t`, no
value can add a directive (hypothesis, checked by nginx itself and by counting directives), and
the served behaviour is checked on loopback: ranges, the manifest's header, partials and
dot-directories refused, listings, the rate limit, TLS with a plain health port, and reload.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2sm_core.cdn import render
from l2sm_core.cdn.render import (
    CacheSite,
    ContentServerSite,
    TlsFiles,
    absolute_path,
    file_name,
    nginx_command,
    nginx_reload_command,
    nginx_test_command,
    render_cache,
    render_content_server,
)
from l2sm_testing.bad_input import tricky_text

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
needs_nginx = pytest.mark.skipif(
    not os.access(NGINX, os.X_OK), reason=f"{NGINX} is missing: `make sysdeps` installs the pinned nginx"
)
# Characters that would end a directive, open a block, quote, comment or name a variable, mixed
# with path characters.
_NEAR_MISS = st.text(alphabet=st.sampled_from(list("ab/._-@+;{}$#\"' \n\t\\\x00é")), max_size=24)
# And text of path characters only, so that many drawn values are accepted and checked by nginx.
_PLAIN = st.text(alphabet=st.sampled_from(list("aZ9/._-@+")), max_size=16)
SUSPECT = st.one_of(tricky_text(["/srv/content", "manifest.json"]), _NEAR_MISS, _PLAIN)
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- helpers ------------------------------------------------------------------------------------


def directives(conf: str) -> list[tuple[int, str, int]]:
    """(depth, name, words) of every directive and block, read as nginx reads them: `#` comments, quoted
    strings, `;` ends a directive, `{` opens a block. Two configs with the same list differ
    only in the values of their directives."""
    found: list[tuple[int, str, int]] = []
    depth, words, word, quote, i = 0, [], "", "", 0
    while i < len(conf):
        char = conf[i]
        if quote:
            if char == "\\":
                word += conf[i : i + 2]
                i += 1
            elif char == quote:
                quote = ""
            else:
                word += char
        elif char in "\"'":
            quote = char
        elif char == "#":
            while i < len(conf) and conf[i] != "\n":
                i += 1
        elif char in " \t\r\n;{}":
            if word:
                words.append(word)
                word = ""
            if char in ";{":
                found.append((depth, words[0] if words else "", len(words)))
                words = []
                depth += char == "{"
            elif char == "}":
                depth -= 1
        else:
            word += char
        i += 1
    assert depth == 0 and not quote, "unbalanced braces or quotes"
    return found


def nginx_t(conf: str, base: Path) -> str:
    """`nginx -t` on conf (its paths absolute); returns nginx's report."""
    path = base / "test.conf"
    path.write_text(conf)
    result = subprocess.run(
        [NGINX, "-t", "-p", str(base), "-c", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, f"nginx -t refused:\n{result.stderr}\n{conf}"
    return result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed(directory: Path, name: str = "cache") -> TlsFiles:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return TlsFiles(certificate=str(cert_path), key=str(key_path))


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory nginx's workers (`nobody` when the master is root) can read: pytest's own
    tmp_path is private to its owner."""
    path = Path(tempfile.mkdtemp(prefix="l2sm-render-"))
    path.chmod(0o755)
    (path / "content").mkdir(mode=0o755)
    (path / "run").mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def content_site(base: Path, **changes) -> ContentServerSite:
    fields = {"port": 8080, "content_dir": str(base / "content"), "runtime_dir": str(base / "run")}
    return ContentServerSite(**{**fields, **changes})


def cache_site(base: Path, **changes) -> CacheSite:
    fields = {"port": 8443, "content_dir": str(base / "content"), "runtime_dir": str(base / "run")}
    return CacheSite(**{**fields, **changes})


# --- the rendered text --------------------------------------------------------------------------


def test_content_server_config_says_what_it_serves(base):
    conf = render_content_server(content_site(base, limit_rate=1_048_576, autoindex=True, workers=2))
    assert "daemon off;" in conf
    assert "worker_processes 2;" in conf
    assert f"pid {base}/run/nginx.pid;" in conf
    assert "listen 8080;" in conf
    assert f"root {base}/content;" in conf
    assert "limit_rate 1048576;" in conf
    assert "autoindex on;" in conf
    assert "location = /manifest.json {" in conf
    assert 'add_header Cache-Control "no-cache" always;' in conf
    assert "location = /healthz {" in conf
    assert "access_log /dev/stdout;" in conf and "error_log stderr" in conf
    assert "max_ranges" not in {d[1] for d in directives(conf)}  # nginx's default: unlimited
    assert conf.endswith("}\n")


def test_defaults_are_no_limit_no_listing_one_worker_per_cpu(base):
    conf = render_content_server(content_site(base))
    assert (2, "limit_rate", 2) not in directives(conf)  # only /healthz's own, in its location
    assert "autoindex off;" in conf
    assert "worker_processes auto;" in conf


def test_every_template_is_shipped_with_the_package():
    names = {path.name for path in render.TEMPLATES.glob("*.j2")}
    assert {render.CONTENT_SERVER_TEMPLATE, render.CACHE_TEMPLATE, render.ROUTER_TEMPLATE} <= names


def test_cache_over_http_answers_health_on_its_port(base):
    conf = render_cache(cache_site(base, port=8080))
    assert "listen 8080;" in conf and "ssl" not in conf
    assert "autoindex off;" in conf
    assert [d for d in directives(conf) if d[1] == "server"] == [(1, "server", 1)]


def test_cache_over_https_has_tls_1_2_up_and_a_plain_health_server(base):
    tls = self_signed(base / "tls")
    conf = render_cache(cache_site(base, tls=tls, health_port=8081, limit_rate=65536))
    assert "listen 8443 ssl;" in conf
    assert f"ssl_certificate {tls.certificate};" in conf
    assert f"ssl_certificate_key {tls.key};" in conf
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf
    assert "listen 8081;" in conf
    assert "limit_rate 65536;" in conf


# --- what is refused ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("srv/content", "not an absolute path"),
        ("/", "whole filesystem"),
        ("/srv/con tent", "letters, digits"),
        ("/srv/content;", "letters, digits"),
        ("/srv/$host", "letters, digits"),
        ("/srv/content/", "letters, digits"),
        ("/srv//content", "letters, digits"),
        ("/srv/../etc", "'..' part"),
        ("/srv/./content", "'..' part"),
        ("/" + "a" * 1100, "at most 1024"),
        (None, "not an absolute path"),
    ],
)
def test_paths_are_plain_absolute_and_normalised(value, message):
    with pytest.raises(ValueError, match=message):
        absolute_path(value)


def test_paths_may_use_storage_mount_characters():
    path = "/var/lib/juju/storage/content/0/cdn_v1.2@a+b-c"
    assert absolute_path(path) == path


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("manifest.json.partial", "never served"),
        ("healthz", "health check"),
        (".manifest", "not a file name"),
        ("a/b.json", "not a file name"),
        ("m;a", "not a file name"),
        (7, "not a file name"),
    ],
)
def test_the_manifest_is_a_plain_file_name(value, message):
    with pytest.raises(ValueError, match=message):
        file_name(value)


@pytest.mark.parametrize(
    "changes",
    [
        {"port": 0},
        {"port": 65536},
        {"port": True},
        {"port": "8080"},
        {"limit_rate": -1},
        {"limit_rate": 1.5},
        {"limit_rate": (1 << 40) + 1},
        {"workers": 0},
        {"workers": 65},
        {"autoindex": "yes"},
        {"colour": "blue"},
    ],
)
def test_numbers_are_ints_in_range_and_unknown_fields_are_refused(base, changes):
    with pytest.raises(pydantic.ValidationError):
        content_site(base, **changes)


@pytest.mark.parametrize(("content", "runtime"), [("/srv/c", "/srv/c/run"), ("/srv/c", "/srv"), ("/x", "/x")])
def test_runtime_dir_and_content_dir_stay_apart(content, runtime):
    with pytest.raises(ValueError, match="must not contain each other"):
        ContentServerSite(port=80, content_dir=content, runtime_dir=runtime)


def test_sibling_directories_with_a_common_prefix_are_apart():
    assert ContentServerSite(port=80, content_dir="/srv/c", runtime_dir="/srv/c-run")


def test_tls_needs_a_health_port(base):
    tls = TlsFiles(certificate="/etc/tls/c.crt", key="/etc/tls/c.key")
    with pytest.raises(ValueError, match="give health-port"):
        cache_site(base, tls=tls)


def test_health_port_is_another_port(base):
    with pytest.raises(ValueError, match="use two ports"):
        cache_site(base, port=8080, health_port=8080)


@pytest.mark.parametrize("where", ["content", "run"])
def test_tls_files_are_never_under_served_or_runtime_directories(base, where):
    tls = TlsFiles(certificate="/etc/tls/c.crt", key=str(base / where / "c.key"))
    with pytest.raises(ValueError, match="TLS key"):
        cache_site(base, tls=tls, health_port=8081)


def test_errors_name_the_field_as_an_option(base):
    from l2sm_core.validation import describe_validation_error

    with pytest.raises(pydantic.ValidationError) as caught:
        content_site(base, content_dir="/srv/x;")
    assert describe_validation_error(caught.value, kind="option").startswith("option 'content-dir': ")


def test_pebble_commands_use_the_config_path():
    assert nginx_command("/etc/nginx/cdn.conf") == ["nginx", "-c", "/etc/nginx/cdn.conf"]
    assert nginx_reload_command("/etc/nginx/cdn.conf")[-2:] == ["-s", "reload"]
    assert nginx_test_command("/etc/nginx/cdn.conf")[-2:] == ["-t", "-q"]
    with pytest.raises(ValueError):
        nginx_command("/etc/nginx/cdn.conf; rm -rf /")


# --- nginx -t on every variant ------------------------------------------------------------------


@needs_nginx
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"limit_rate": 1},
        {"limit_rate": 1 << 40},
        {"autoindex": True},
        {"workers": 1, "manifest": "index.v2.json"},
    ],
    ids=["plain", "slowest-rate", "fastest-rate", "autoindex", "other-manifest"],
)
def test_content_server_variants_pass_nginx_t(base, changes):
    nginx_t(render_content_server(content_site(base, **changes)), base)


@needs_nginx
@pytest.mark.parametrize("variant", ["http", "http-health-port", "https", "https-rate"])
def test_cache_variants_pass_nginx_t(base, variant):
    changes: dict = {}
    if variant.startswith("https"):
        changes = {"tls": self_signed(base / "tls"), "health_port": 8081}
    if variant == "http-health-port":
        changes = {"health_port": 8081}
    if variant.endswith("rate"):
        changes["limit_rate"] = 10_000
    nginx_t(render_cache(cache_site(base, **changes)), base)


@needs_nginx
def test_nginx_t_would_catch_a_broken_config(base):
    conf = render_content_server(content_site(base)).replace("autoindex off;", "autoindex off")
    with pytest.raises(AssertionError, match="nginx -t refused"):
        nginx_t(conf, base)


# --- no value adds a directive ------------------------------------------------------------------

# Each field gets the suspect text inside a path of the test's own directory, so that an
# accepted value is one nginx can check for real (it makes runtime_dir's temp dirs, reads the
# certificate) without touching anything outside it.
_FIELDS = ["content_dir", "runtime_dir", "manifest", "certificate", "key"]


def _variant(base: Path, field: str, value: str) -> CacheSite:
    tls = {"certificate": f"{base}/tls/cert", "key": f"{base}/tls/key"}
    fields: dict = {"content_dir": f"{base}/content", "runtime_dir": f"{base}/run", "manifest": "m.json"}
    if field in tls:
        tls[field] = f"{tls[field]}{value}"
    elif field == "manifest":
        fields["manifest"] = f"m{value}"
    else:
        fields[field] = f"{fields[field]}{value}"
    return CacheSite(port=8443, health_port=8081, tls=TlsFiles(**tls), **fields)


@needs_nginx
@pytest.mark.parametrize("field", _FIELDS)
@PROPERTY
@given(value=SUSPECT)
def test_no_text_adds_a_directive_and_nginx_accepts_what_is_accepted(field, value):
    with tempfile.TemporaryDirectory(prefix="l2sm-render-") as tmp:
        base = Path(tmp)
        baseline = render_cache(_variant(base, field, ""))
        try:
            site = _variant(base, field, value)
        except ValueError:
            return  # refused (pydantic's ValidationError is a ValueError)
        conf = render_cache(site)
        assert directives(conf) == directives(baseline)
        assert conf.count("\n") == baseline.count("\n")
        Path(site.runtime_dir).mkdir(parents=True, exist_ok=True)
        assert site.tls is not None
        made = self_signed(base / "made")
        for made_path, path in ((made.certificate, site.tls.certificate), (made.key, site.tls.key)):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(made_path, path)
        nginx_t(conf, base)


@PROPERTY
@given(value=SUSPECT)
def test_any_path_text_is_refused_or_plain(value):
    try:
        path = absolute_path(value)
    except ValueError:
        return
    assert path.startswith("/") and not set(path) & set(" \t\n;{}$#\"'\\")
    site = ContentServerSite(port=80, content_dir=path, runtime_dir="/run/l2sm-render-test")
    baseline = ContentServerSite(port=80, content_dir="/srv/x", runtime_dir="/run/l2sm-render-test")
    assert directives(render_content_server(site)) == directives(render_content_server(baseline))


@PROPERTY
@given(
    port=st.one_of(st.integers(), st.booleans(), st.text(max_size=6), st.floats()),
    rate=st.one_of(st.integers(), st.booleans(), st.text(max_size=6), st.floats()),
)
def test_numbers_are_refused_or_rendered_as_plain_ints(port, rate):
    try:
        site = ContentServerSite(port=port, content_dir="/srv/c", runtime_dir="/run/x", limit_rate=rate)
    except ValueError:
        return
    conf = render_content_server(site)
    assert f"listen {int(port)};" in conf
    assert (f"\n        limit_rate {int(rate)};\n" in conf) == (rate > 0)  # the server's, not /healthz's


# --- served, for real, on loopback --------------------------------------------------------------


class Served:
    """nginx started the way Pebble starts it (nginx_command, foreground), on loopback ports."""

    def __init__(self, base: Path, conf: str) -> None:
        self.base = base
        self.conf_path = base / "nginx.conf"
        self.conf_path.write_text(conf)
        self.log = base / "nginx.stderr"
        argv = nginx_command(str(self.conf_path))
        argv[0] = NGINX
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)

    def wait_for(self, port: int) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited: {self.log.read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.02)
        raise AssertionError("nginx did not listen")

    def reload(self) -> None:
        argv = nginx_reload_command(str(self.conf_path))
        argv[0] = NGINX
        subprocess.run(argv, check=True, capture_output=True, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def serve(base):
    started: list[Served] = []

    def start(conf: str, port: int) -> Served:
        served = Served(base, conf)
        started.append(served)
        served.wait_for(port)
        return served

    yield start
    for served in started:
        served.stop()


def get(port: int, path: str, headers: dict | None = None, context: ssl.SSLContext | None = None):
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def fill(content: Path) -> None:
    (content / "video.mp4").write_bytes(bytes(range(256)) * 4)
    (content / "manifest.json").write_text('{"files": []}\n')
    (content / "next.mp4.partial").write_bytes(b"half")
    (content / "sub").mkdir(mode=0o755)
    (content / "sub" / "seg.m4s.partial").write_bytes(b"half")
    (content / ".incoming").mkdir(mode=0o755)
    (content / ".incoming" / "x.mp4").write_bytes(b"arriving")
    (content / "link.mp4").symlink_to("/etc/hostname")
    for path in content.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


@needs_nginx
def test_content_server_serves_ranges_manifest_and_never_partials(base, serve):
    fill(base / "content")
    port = free_port()
    serve(render_content_server(content_site(base, port=port, autoindex=True)), port)

    assert get(port, "/healthz")[::2] == (200, b"ok\n")
    status, headers, body = get(port, "/video.mp4", {"Range": "bytes=10-19"})
    assert (status, body, headers["Content-Type"]) == (206, bytes(range(10, 20)), "video/mp4")
    status, headers, _ = get(port, "/video.mp4", {"Range": "bytes=0-1,100-101"})
    assert status == 206 and headers["Content-Type"].startswith("multipart/byteranges")
    status, headers, _ = get(port, "/manifest.json")
    assert (status, headers["Cache-Control"], headers["Content-Type"]) == (
        200,
        "no-cache",
        "application/json",
    )
    for path in (
        "/next.mp4.partial",
        "/next.mp4%2Epartial",
        "/sub/seg.m4s.partial",
        "/.incoming/x.mp4",
        "/%2Eincoming/x.mp4",
        "/sub/../.incoming/x.mp4",
    ):
        assert get(port, path)[0] == 404, path
    assert get(port, "/link.mp4")[0] in (403, 404)  # symlinks are not followed
    status, _, listing = get(port, "/")
    assert status == 200 and b"video.mp4" in listing and b".incoming" not in listing


@needs_nginx
def test_content_server_without_autoindex_lists_nothing(base, serve):
    fill(base / "content")
    port = free_port()
    serve(render_content_server(content_site(base, port=port)), port)
    assert get(port, "/")[0] == 403
    assert get(port, "/video.mp4")[0] == 200


@needs_nginx
def test_limit_rate_slows_each_connection(base, serve):
    (base / "content" / "big.bin").write_bytes(b"x" * 48 * 1024)
    (base / "content" / "big.bin").chmod(0o644)
    port = free_port()
    serve(render_content_server(content_site(base, port=port, limit_rate=32 * 1024)), port)
    start = time.monotonic()
    status, _, body = get(port, "/big.bin")
    assert status == 200 and len(body) == 48 * 1024
    assert time.monotonic() - start >= 1.0  # 48 KiB at 32 KiB/s
    start = time.monotonic()
    assert get(port, "/healthz")[0] == 200
    assert time.monotonic() - start < 1.0


@needs_nginx
def test_cache_over_https_reloads_a_renewed_certificate(base, serve):
    fill(base / "content")
    tls = self_signed(base / "tls", "first")
    port, health = free_port(), free_port()
    conf = render_cache(cache_site(base, port=port, tls=tls, health_port=health))
    served = serve(conf, port)

    def peer(name: str) -> tuple[int, str | None]:
        context = ssl.create_default_context(cafile=str(base / "tls" / f"{name}.crt"))
        context.check_hostname = False
        status, _, _ = get(port, "/video.mp4", context=context)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw) as wrapped,
        ):
            return status, wrapped.version()

    status, version = peer("first")
    assert status == 200 and version in ("TLSv1.2", "TLSv1.3")
    assert get(health, "/healthz")[::2] == (200, b"ok\n")
    assert get(health, "/video.mp4")[0] == 404  # the health port serves nothing else
    assert get(port, "/healthz", context=_trusting(base / "tls" / "first.crt"))[0] == 200

    old_only = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old_only.check_hostname, old_only.verify_mode = False, ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is the point here
        old_only.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old_only.maximum_version = ssl.TLSVersion.TLSv1_1
        old_only.set_ciphers("DEFAULT:@SECLEVEL=0")  # so the client does offer TLS 1.1
    with pytest.raises(ssl.SSLError) as refused:
        get(port, "/video.mp4", context=old_only)
    assert refused.value.reason in ("TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL"), refused.value

    # Renewal: new files at the same paths, then a reload; the master keeps running.
    renewed = self_signed(base / "tls", "second")
    shutil.copyfile(renewed.certificate, tls.certificate)
    shutil.copyfile(renewed.key, tls.key)
    served.reload()
    deadline = time.monotonic() + 10
    while True:
        try:
            assert peer("second")[0] == 200
            break
        except ssl.SSLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert served.proc.poll() is None


def _trusting(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    return context


@needs_nginx
def test_cache_over_http_serves_complete_files_only(base, serve):
    fill(base / "content")
    port = free_port()
    serve(render_cache(cache_site(base, port=port, limit_rate=1 << 30)), port)
    assert get(port, "/healthz")[0] == 200
    assert get(port, "/video.mp4", {"Range": "bytes=0-0"})[::2] == (206, b"\x00")
    assert get(port, "/next.mp4.partial")[0] == 404
    assert get(port, "/.incoming/x.mp4")[0] == 404
    assert get(port, "/")[0] == 403

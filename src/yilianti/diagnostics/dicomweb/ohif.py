"""The OHIF viewer (npm `@ohif/app`, MIT), optional: `make ohif` installs its built `dist/` with the machine's npm.

    python -m yilianti.diagnostics.dicomweb.ohif [--into DIR] [--version X.Y.Z]

`npm pack` fetches the package's tarball from the npm registry (no dependency tree, no build); its `dist/` is
unpacked into DIR (default: settings.ohif_dir, var/ohif) and adapted to be served by the app under /ohif/:

- the webpack public path, the page's links and the stylesheet's urls point at /ohif/ (the build assumes /);
- the service-worker script is left out (it loads Workbox from a CDN: nothing is fetched from outside);
- `app-config.js` is ours: one DICOMweb data source, this server's /dicomweb, through the user's session
  (no public demo server, no other data source, no URL-loaded configuration);
- OHIF's LICENSE is kept beside it (LICENSE-OHIF.txt), and a VERSION file says what was installed.

The app serves the directory when it exists (diagnostics/dicomweb/pages.py) and the order page then offers
"在 OHIF 中打开"; without it the light viewer is all there is (and stays the default either way).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

VERSION = "3.13.2"
PREFIX = "/ohif/"

APP_CONFIG = """\
/* Yilianti's configuration of the OHIF viewer (written by `make ohif`; see diagnostics/dicomweb/ohif.py). */
window.config = {
  name: 'yilianti',
  routerBasename: '/ohif',
  extensions: [],
  modes: [],
  customizationService: {},
  showStudyList: true,
  maxNumberOfWebWorkers: 2,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: true,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  investigationalUseDialog: { option: 'never' },
  maxNumRequests: { interaction: 100, thumbnail: 5, prefetch: 10 },
  showErrorDetails: 'dev',
  defaultDataSourceName: 'yilianti',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'yilianti',
      configuration: {
        friendlyName: 'Yilianti 医联体影像',
        name: 'yilianti',
        wadoUriRoot: window.location.origin + '/dicomweb',
        qidoRoot: window.location.origin + '/dicomweb',
        wadoRoot: window.location.origin + '/dicomweb',
        qidoSupportsIncludeField: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: false,
        omitQuotationForMultipartRequest: true,
        bulkDataURI: { enabled: true },
      },
    },
  ],
};
"""


def npm() -> str:
    found = shutil.which("npm")
    if not found:
        sys.exit("npm not found: install Node.js and npm (Debian: apt-get install npm) to install the OHIF viewer")
    return found


def fetch(version: str, workdir: Path) -> Path:
    """The package's tarball, fetched with `npm pack` (the registry npm is configured with)."""
    out = subprocess.run([npm(), "pack", f"@ohif/app@{version}", "--pack-destination", str(workdir), "--silent"],
                         capture_output=True, text=True, timeout=1800, cwd=workdir)
    if out.returncode != 0:
        sys.exit(f"npm pack @ohif/app@{version} failed:\n{out.stderr.strip()}")
    tarballs = sorted(workdir.glob("ohif-app-*.tgz"))
    if not tarballs:
        sys.exit("npm pack did not leave the package's tarball")
    return tarballs[-1]


def unpack(tarball: Path, into: Path) -> None:
    """`package/dist/*` and `package/LICENSE` of the tarball into `into` (no path leaves it)."""
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            if name == "package/LICENSE":
                target = into / "LICENSE-OHIF.txt"
            elif name.startswith("package/dist/") and member.isfile():
                target = into / name[len("package/dist/"):]
            else:
                continue
            if ".." in Path(name).parts:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is not None:
                target.write_bytes(source.read())


def adapt(root: Path) -> None:
    """Served under /ohif/ instead of /, without the CDN-loading service worker, with our configuration."""
    index = root / "index.html"
    html = index.read_text(encoding="utf-8")
    html = re.sub(r'<script[^>]*init-service-worker\.js[^>]*>\s*</script>', "", html)
    html = html.replace('window.PUBLIC_URL="/"', f'window.PUBLIC_URL="{PREFIX}"')
    html = re.sub(r'(href|src)="/(?!/)', rf'\1="{PREFIX}', html)
    index.write_text(html, encoding="utf-8")
    for path in root.rglob("*.js"):
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        changed = re.sub(r'(__webpack_require__\.p\s*=\s*)"/"', rf'\1"{PREFIX}"', text)
        changed = changed.replace('.p="/"', f'.p="{PREFIX}"')
        if changed != text:
            path.write_text(changed, encoding="utf-8", errors="surrogateescape")
    for path in root.rglob("*.css"):
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        changed = re.sub(r"url\(/(?!/)", f"url({PREFIX}", text)
        if changed != text:
            path.write_text(changed, encoding="utf-8", errors="surrogateescape")
    (root / "init-service-worker.js").unlink(missing_ok=True)
    (root / "app-config.js").write_text(APP_CONFIG, encoding="utf-8")


def install(into: Path, version: str = VERSION) -> Path:
    """Fetch, unpack and adapt OHIF into `into` (replaced whole, only once the new copy is complete)."""
    into = into.resolve()
    into.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ohif-", dir=into.parent) as tmp:
        work = Path(tmp)
        tarball = fetch(version, work)
        fresh = work / "dist"
        fresh.mkdir()
        unpack(tarball, fresh)
        if not (fresh / "index.html").exists():
            sys.exit(f"@ohif/app@{version} has no dist/index.html")
        adapt(fresh)
        (fresh / "VERSION").write_text(f"@ohif/app {version}\n", encoding="utf-8")
        old = work / "old"
        if into.exists():
            into.rename(old)
        fresh.rename(into)
    return into


def size_of(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> None:
    from yilianti.config import get_settings

    parser = argparse.ArgumentParser(description="Install the OHIF viewer (npm @ohif/app) to be served at /ohif/")
    parser.add_argument("--into", type=Path, default=None, help="directory (default: settings.ohif_dir)")
    parser.add_argument("--version", default=VERSION)
    args = parser.parse_args(argv)
    started = time.monotonic()
    root = install(args.into or get_settings().ohif_dir, args.version)
    print(f"OHIF @ohif/app {args.version} installed in {root} ({size_of(root) / 2**20:.0f} MiB) "
          f"in {time.monotonic() - started:.0f} s; open it from an order's images (在 OHIF 中打开)")


if __name__ == "__main__":
    main()

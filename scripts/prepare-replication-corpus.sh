#!/usr/bin/env bash
# Builds the small-scale replication corpus (issue 13) and prints its folder:
#   ${SSA_CACHE:-$HOME/.cache/ssa}/corpus/debian-docs-large/
# Real English text, about 22M Llama-3 tokens: the manuals, reference pages and man pages of 20
# Debian 12 documentation packages, all in Debian main (the table below). The demo corpus
# (scripts/prepare-demo-corpus.sh, python3.11-doc alone, 2.6M tokens) is one of them.
#
# One document per source file, in plain text: reStructuredText, AsciiDoc and Vim help as they
# are; HTML through a small html.parser extractor that drops scripts, styles and the page
# furniture (navigation, menus, sidebars, tables of contents, permalinks) repeated on every page;
# man pages rendered by man(1), because roff markup is not prose. Identical documents are kept
# once (the first, in table order); documents under 200 characters are dropped. Files are taken
# in sorted path order, so the corpus is the same on every run with the same package versions.
#
# The folder holds, per package PKG, the shards PKG_#####.ds (+ .index, .metadata; uint32 tokens,
# EOS after every document, no BOS) that `ssa data tokenize` writes, so `ssa data inspect` shows
# the tokens of each package, and text/PKG.jsonl ({"text": ...} per line), the same documents as
# text, for `ssa eval --tasks ppl-text:FILE`. The loader reads only the *.ds files of a folder,
# not text/. Hold out validation documents in the loader (configs/replication/base.yaml:
# `validation_documents: 64`).
#
# Idempotent: a finished corpus is kept. It is built in a staging folder and renamed into place,
# so the folder exists only when complete. Needs apt-get (as root, or sudo) for missing packages
# (about 700 MB installed in all), Debian's /usr/bin/python3 (standard library only), and the ssa
# binary (${SSA_BINARY:-${SSA_BUILD_DIR:-build}/ssa}; built if missing). About 3 minutes on 2 cores,
# most of it rendering some 2,500 man pages.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ssa=${SSA_BINARY:-${SSA_BUILD_DIR:-$root/build}/ssa}
out=${SSA_CACHE:-$HOME/.cache/ssa}/corpus/debian-docs-large

# package, the files of `dpkg -L package` to read (regular expression), and optionally the files
# among them to leave out: indexes, cross-reference lists, tables of contents, generated source
# listings, translations, Vim's patch-by-patch change logs.
table='
bash-doc               \.html$
cmake-doc              /html/_sources/.*\.txt$
debian-handbook        /html/en-US/.*\.html$
debian-policy          \.txt\.gz$
debian-reference-en    \.en\.txt\.gz$
developers-reference   /_sources/.*\.txt$
git-doc                \.txt$
gnu-standards          \.html$
libssl-doc             ^/usr/share/man/
linux-doc-6.1          /html/_sources/.*\.rst\.txt$    /translations/
manpages               ^/usr/share/man/
manpages-dev           ^/usr/share/man/
perl-doc               ^/usr/share/man/                /perl(toc|uniprops)\.1\.gz$
postgresql-doc-15      \.html$                         /bookindex\.html$
python-django-doc      \.html$                         /_modules/|/(genindex|search|py-modindex)\.html$
python-sqlalchemy-doc  /rst/.*\.rst$
python3.11-doc         /html/_sources/.*\.txt$
sqlite3-doc            \.html$                         /(requirements|sitemap|toc|keyword_index|doc_[a-z]+_crossref)\.html$
vim-runtime            /doc/.*\.txt$                   /version[0-9]+\.txt$
zsh-doc                /html/.*\.html$                 /(.*-Index|zsh_toc|zsh_abt)\.html$
'
mapfile -t packages < <(awk 'NF {print $1}' <<<"$table")

if [[ -d $out ]]; then
  echo "$out"
  exit 0
fi
missing=()
for package in "${packages[@]}" python3 man-db groff-base; do
  if [[ $(dpkg-query -W -f='${Status}' "$package" 2>/dev/null) != "install ok installed" ]]; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  sudo=()
  if ((EUID != 0)); then sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
if [[ ! -x $ssa ]]; then
  bash "$root/scripts/build.sh" --target ssa >&2
fi
tokenizer=$("$root/scripts/fetch-tokenizer.sh")

staging="$out.tmp"
rm -rf "$staging"
mkdir -p "$staging/text"
/usr/bin/python3 - "$staging/text" "$table" <<'PY'
import gzip, hashlib, html.parser, json, os, re, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

SKIP_TAGS = {"head", "script", "style", "nav", "header", "footer", "form", "noscript", "svg", "button"}
# Page furniture of the Sphinx, DocBook (PostgreSQL), Publican (Debian handbook), Texinfo (bash,
# zsh, GNU standards), Django and SQLite layouts, matched against each word of an element's class.
SKIP_CLASS = re.compile(r"related|sphinxsidebar|navheader|navfooter|headerlink|toc|contents|header|"
                        r"docnav|nosearch|menu|searchmenu|breadcrumbs|footer|nav|navbar|index-[a-z]+")
SKIP_IDS = {"hd", "ft", "sidebar", "global-nav", "banner", "breadcrumbs", "footer", "searchbox"}
BLOCKS = {"p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "tr",
          "table", "pre", "blockquote", "section", "article", "hr", "caption", "figcaption"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
MIN_CHARS = 200


class Extractor(html.parser.HTMLParser):
    """Text of an HTML page: blocks become paragraphs, <pre> keeps its layout, skipped elements
    (with everything inside) vanish. A skipped element ends at the end tag that balances it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skipping, self.depth, self.pre = [], None, 0, 0

    def handle_starttag(self, tag, attrs):
        if self.skipping:
            self.depth += tag == self.skipping
            return
        attrs = dict(attrs)
        if (tag in SKIP_TAGS or attrs.get("id") in SKIP_IDS
                or any(SKIP_CLASS.fullmatch(word) for word in (attrs.get("class") or "").split())):
            if tag not in VOID:
                self.skipping, self.depth = tag, 1
            return
        self.pre += tag == "pre"
        if tag in BLOCKS:
            self.parts.append("\n" if tag == "br" else "\n\n")

    def handle_endtag(self, tag):
        if self.skipping:
            self.depth -= tag == self.skipping
            if self.depth == 0:
                self.skipping = None
            return
        if tag == "pre" and self.pre:
            self.pre -= 1
        if tag in BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))


def read(path):
    data = open(path, "rb").read()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    return data.decode("utf-8", "replace")


def convert(path):
    if path.startswith("/usr/share/man/"):
        # Without a terminal man-db drops bold and underline; no justification or hyphenation,
        # so words stay whole and spacing plain.
        text = subprocess.run(["man", "--no-justification", "--no-hyphenation", "-l", path],
                              capture_output=True, env=dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
                              ).stdout.decode("utf-8", "replace")
    elif re.search(r"\.html?$", path):
        extractor = Extractor()
        extractor.feed(read(path))
        extractor.close()
        text = "".join(extractor.parts)
    else:
        text = read(path)
    text = re.sub(r"[ \t]+\n", "\n", text.replace("\r\n", "\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


folder, table = sys.argv[1], sys.argv[2]
seen = set()
for row in filter(None, map(str.split, table.splitlines())):
    package, take, leave = row[0], re.compile(row[1]), re.compile(row[2]) if len(row) > 2 else None
    listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
    # Symbolic links (man page aliases, pages shared between packages) would only repeat a document.
    paths = sorted(p for p in listing.splitlines() if take.search(p) and not (leave and leave.search(p))
                   and os.path.isfile(p) and not os.path.islink(p))
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        texts = list(pool.map(convert, paths))
    kept = short = repeated = chars = 0
    with open(os.path.join(folder, package + ".jsonl"), "w", encoding="utf-8") as jsonl:
        for text in texts:
            digest = hashlib.sha256(text.encode()).digest()
            if len(text) < MIN_CHARS:
                short += 1
            elif digest in seen:
                repeated += 1
            else:
                seen.add(digest)
                jsonl.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
                kept += 1
                chars += len(text)
    print(f"{package}: {kept} documents, {chars / 1e6:.1f}M characters "
          f"({len(paths)} files, {short} short, {repeated} repeated)", file=sys.stderr)
    if kept == 0:
        # Minimal images often exclude /usr/share/doc and /usr/share/man (dpkg path-exclude).
        sys.exit(f"no documents from {package}: are its files installed (see /etc/dpkg/dpkg.cfg.d/)?")
PY
for package in "${packages[@]}"; do
  "$ssa" data tokenize --tokenizer "$tokenizer" --input "$staging/text/$package.jsonl" --out "$staging" \
    --name "$package" --shard-tokens 1000000 >&2
done
mv "$staging" "$out"
"$ssa" data inspect "$out" >&2
echo "$out"

#!/usr/bin/env bash
# Fetch Matt Mahoney's text8 (the first 10^8 bytes of a cleaned English Wikipedia dump,
# one line, ~17M words) into data/text8 of the repository, for users with internet access.
# Then, from the repository root:
#   python -m w2v.train data=text8
set -euo pipefail
cd "$(dirname "$0")/.."
url=${TEXT8_URL:-http://mattmahoney.net/dc/text8.zip}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "downloading $url"
curl -fL --retry 3 -o "$tmp/text8.zip" "$url"
unzip -q "$tmp/text8.zip" -d "$tmp"
mkdir -p data
mv "$tmp/text8" data/text8.part && mv data/text8.part data/text8
echo "wrote data/text8 ($(wc -c < data/text8) bytes)"

#!/bin/sh
# Renders the PNG icons from their SVG sources (needs rsvg-convert, Debian
# package librsvg2-bin). The PNGs are committed; rerun after editing an SVG.
set -eu
cd "$(dirname "$0")/../assets/icons"
rsvg-convert -w 48 -h 48 accord.svg -o accord-48.png
for s in idle asking session; do
    rsvg-convert -w 32 -h 32 "tray-$s.svg" -o "tray-$s.png"
done
ls -l ./*.png

#!/usr/bin/env bash
# Makes the hotline's prompt set: 8 kHz mono 16-bit PCM WAV, Mandarin (zh)
# and English (en). Needs espeak-ng and sox (Debian: apt-get install -y
# espeak-ng sox). The generated files are committed, so running the hotline
# needs neither tool.
set -euo pipefail
cd "$(dirname "$0")"

say() { # name lang voice text
    local name=$1 lang=$2 voice=$3 text=$4 tmp
    tmp=$(mktemp --suffix=.wav)
    espeak-ng -v "$voice" -s 150 -w "$tmp" "$text"
    # -D: no dither, so the file is the same on every run.
    sox -D "$tmp" -r 8000 -c 1 -b 16 -e signed-integer "${name}_${lang}.wav" gain -n -3 rate -v 8000
    rm -f "$tmp"
    echo "${name}_${lang}.wav"
}

say welcome en en-us "Welcome to the property service hotline. Please enter your digits, then press the hash key."
say welcome zh cmn   "欢迎致电物业服务热线。请输入号码，然后按井号键。"
say goodbye en en-us "Thank you for calling. Goodbye."
say goodbye zh cmn   "感谢您的来电，再见。"
say return_visit en en-us "This is the property service centre, calling about the repair you reported. If it is fixed, press 1. If it is not, press 2."
say return_visit zh cmn   "您好，这里是物业服务中心，回访您报修的问题。如果已经修好，请按1；如果没有修好，请按2。"
say survey en en-us "Please rate our service from 1 to 5, where 5 is very satisfied."
say survey zh cmn   "请为我们的服务打分，1到5分，5分表示非常满意。"

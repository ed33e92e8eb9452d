#!/usr/bin/env python3
"""Writes config/owners.csv (1,000 synthetic owners of two sites) and
config/gifts.csv. Deterministic: the same files on every run. The first
owner, O-0001, calls from 13800138000 (the number the SIPp scenarios use)
and has the service PIN 2468 (for a call from an unknown number); one
owner in ten has no PIN."""
import csv
import random
from pathlib import Path

here = Path(__file__).parent
rng = random.Random(20261123)
# PINs from their own generator: the other columns stay as they were.
pin_rng = random.Random(4711)
surnames = ["Li", "Wang", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou",
            "Xu", "Sun", "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Gao", "Luo"]
given = ["Wei", "Fang", "Na", "Min", "Jing", "Lei", "Jun", "Yan", "Hui", "Qiang",
         "Li", "Ping", "Gang", "Tao", "Xin", "Yu", "Hao", "Ling", "Bo", "Ying"]
sites = ["garden", "lakeside"]
used_units = set()
used_phones = set()

with open(here / "owners.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["id", "name", "site", "building", "unit", "phones", "language",
                "class", "points", "fee_balance", "pin"])
    for n in range(1, 1001):
        while True:
            site = sites[0] if n == 1 else rng.choice(sites)
            building = "3" if n == 1 else str(rng.randint(1, 12))
            unit = "1202" if n == 1 else f"{rng.randint(1, 28)}{rng.randint(1, 4):02d}"
            if (site, building, unit) not in used_units:
                used_units.add((site, building, unit))
                break
        while True:
            mobile = "13800138000" if n == 1 else f"1{rng.choice('3589')}{rng.randint(0, 999999999):09d}"
            if mobile not in used_phones:
                used_phones.add(mobile)
                break
        phones = [mobile]
        if rng.random() < 0.2:
            landline = f"021-{rng.randint(5000, 6999)} {rng.randint(0, 9999):04d}"
            if landline not in used_phones:
                used_phones.add(landline)
                phones.append(landline)
        language = "zh" if n == 1 or rng.random() < 0.7 else "en"
        r = rng.random()
        klass = "ordinary" if r < 0.85 else "vip" if r < 0.95 else "key"
        points = 800 if n == 1 else rng.randint(0, 5000)
        balance = 1234.50 if n == 1 else round(rng.uniform(-200, 3000), 2)
        name = f"{rng.choice(surnames)} {rng.choice(given)}"
        pin = "2468" if n == 1 else "" if pin_rng.random() < 0.1 else \
            f"{pin_rng.randint(0, 999999):06d}"
        w.writerow([f"O-{n:04d}", name, site, building, unit, ";".join(phones),
                    language, klass, points, f"{balance:.2f}", pin])

with open(here / "gifts.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["id", "name", "points"])
    for row in [("G1", "Umbrella", 120), ("G2", "Car wash voucher", 300),
                ("G3", "Rice cooker", 500), ("G4", "One month parking", 1500)]:
        w.writerow(row)

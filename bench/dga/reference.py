#!/usr/bin/env python3
"""Reference generators for the DGA families of internal/dga, written from the
published descriptions (J. Bader, "The DGAs of Necurs", "Three variants of
Murofet's DGA", "The DGA of newGOZ"; see docs/dga.md), in plain Python 3.

Two uses: finding the day of a published sample (--find NAME) and the
dga_generate benchmark's anchor (--bench FAMILY: names per second).
It reproduces the published sample files exactly (bench/dga/run.sh checks).
"""
import argparse
import datetime as dt
import hashlib
import struct
import sys
import time

M64 = (1 << 64) - 1

NECURS_TLDS = ['tj', 'in', 'jp', 'tw', 'ac', 'cm', 'la', 'mn', 'so', 'sh', 'sc', 'nu', 'nf', 'mu',
               'ms', 'mx', 'ki', 'im', 'cx', 'cc', 'tv', 'bz', 'me', 'eu', 'de', 'ru', 'co', 'su', 'pw',
               'kz', 'sx', 'us', 'ug', 'ir', 'to', 'ga', 'com', 'net', 'org', 'biz', 'xxx', 'pro', 'bit']


def necurs_mix(v):
    for i in range((v & 0x7F) + 21):
        v = (v + (((v * 7) ^ (v << 15)) + 8 * i - (v >> 5))) & M64
    return v


def necurs(day, seed=9, count=2048):
    out = []
    for seq in range(count):
        n = necurs_mix(day.year)
        n = necurs_mix(n + day.month + 43690)
        n = necurs_mix(n + (day.day >> 2))
        n = necurs_mix(n + seq)
        n = necurs_mix(n + seed)
        name = []
        for i in range(n % 15 + 7):
            n = necurs_mix(n + i)
            name.append(chr(n % 25 + ord('a')))
            n = necurs_mix(n + 0xABBEDF)
        out.append(''.join(name) + '.' + NECURS_TLDS[n % 43])
    return out


def murofet(day, count=1000):
    out = []
    tlds = ['ru', 'biz', 'info', 'org', 'net', 'com']
    for index in range(count):
        # The published reimplementation computes year & (0xFF + 0x30):
        # Python's precedence, kept as published.
        seed = bytes([(day.year & (0xFF + 0x30)) & 0xFF, day.month, (day.day // 7) * 7]) + struct.pack('<I', index)
        name = []
        for b in hashlib.md5(seed).digest():
            d, c = (b & 0x1F) + ord('a'), (b >> 3) + ord('a')
            if d != c:
                if d <= ord('z'):
                    name.append(chr(d))
                if c <= ord('z'):
                    name.append(chr(c))
        for i, tld in enumerate(tlds):
            if index % (len(tlds) - i) == 0:
                break
        out.append(''.join(name) + '.' + tld)
    return out


def newgoz(day, count=1000, key=b'\x01\x05\x19\x35'):
    out = []
    for seq in range(count):
        h = hashlib.md5(struct.pack('<I', seq) + struct.pack('<H', day.year) + key +
                        struct.pack('<H', day.month) + key + struct.pack('<H', day.day) + key).digest()
        name = ''
        for i in range(0, 16, 4):
            v = struct.unpack('<I', h[i:i + 4])[0]
            part = ''
            for _ in range(7):
                r = v % 36
                v //= 36
                part = '0123456789abcdefghijklmnopqrstuvwxyz'[r] + part
                if v == 0:
                    break
            name += part
        tld = 'com' if seq % 4 == 0 else 'org' if seq % 3 == 0 else 'biz' if seq % 2 == 0 else 'net'
        out.append(name + '.' + tld)
    return out


FAMILIES = {'necurs': necurs, 'murofet': murofet, 'newgoz': newgoz}


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--family', required=True, choices=sorted(FAMILIES))
    p.add_argument('--date', help='YYYY-MM-DD: print that day\'s names')
    p.add_argument('--find', help='a name: print the days from --since to --until that generate it first')
    p.add_argument('--since', default='2008-01-01')
    p.add_argument('--until', default='2016-12-31')
    p.add_argument('--bench', type=float, help='seconds: print names per second')
    a = p.parse_args()
    gen = FAMILIES[a.family]
    if a.date:
        print('\n'.join(gen(dt.date.fromisoformat(a.date))))
    if a.find:
        d, end = dt.date.fromisoformat(a.since), dt.date.fromisoformat(a.until)
        while d <= end:
            if gen(d, count=1)[0] == a.find:
                print(d.isoformat())
            d += dt.timedelta(days=1)
    if a.bench:
        n, start, d = 0, time.perf_counter(), dt.date(2020, 1, 1)
        while time.perf_counter() - start < a.bench:
            n += len(gen(d))
            d += dt.timedelta(days=1)
        print(f'{n / (time.perf_counter() - start):.0f}')


if __name__ == '__main__':
    sys.exit(main())

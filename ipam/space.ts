/**
 * One peer's own addresses: the spans the ring says it owns, and which of those are held by whom.
 *
 * Free space is a sorted list of disjoint, non-adjacent spans, so allocating the lowest free address in a subnet is a
 * binary search plus a trim, and a range of a million addresses costs a handful of spans rather than a bitmap.
 * Held addresses are a map from address to the holder's ident. Held addresses stay held even if the ring stops
 * listing them as ours (that only happens after a refused conflict); they are never donated.
 */
import { type Address, type AddressRange, rangeIntersect, rangeSize } from './address.js';

interface Span {
  start: number;
  end: number;
}

export class Space {
  private owned: Span[] = [];
  private free: Span[] = [];
  private readonly held = new Map<Address, string>();

  /** Replace the owned spans (sorted, disjoint) with what the ring says now; free = owned minus held. */
  setOwned(ranges: readonly AddressRange[]): void {
    this.owned = normalise(ranges);
    const holes = [...this.held.keys()].sort((a, b) => a - b);
    const free: Span[] = [];
    let h = 0;
    for (const o of this.owned) {
      let at = o.start;
      while (h < holes.length && holes[h]! < o.start) h++;
      while (h < holes.length && holes[h]! < o.end) {
        if (holes[h]! > at) free.push({ start: at, end: holes[h]! });
        at = holes[h]! + 1;
        h++;
      }
      if (at < o.end) free.push({ start: at, end: o.end });
    }
    this.free = free;
  }

  /** The owned spans, sorted. */
  ownedRanges(): readonly AddressRange[] {
    return this.owned;
  }

  /** Whether `addr` is in our owned spans. */
  owns(addr: Address): boolean {
    const i = lastStartAtOrBefore(this.owned, addr);
    return i >= 0 && addr < this.owned[i]!.end;
  }

  /** Hold the lowest free address in `r` for `ident`; undefined when `r` has none free here. */
  allocate(r: AddressRange, ident: string): Address | undefined {
    let i = lastStartAtOrBefore(this.free, r.start);
    if (i < 0 || this.free[i]!.end <= r.start) i++;
    const s = this.free[i];
    if (!s) return undefined;
    const addr = Math.max(s.start, r.start);
    if (addr >= r.end) return undefined;
    this.takeFree(i, addr);
    this.held.set(addr, ident);
    return addr;
  }

  /**
   * Hold exactly `addr` for `ident`. 'held' when someone already holds it (see `holderOf`; holding it again for the
   * same ident is 'ok'), 'not-owned' when it is not ours to give.
   */
  claim(addr: Address, ident: string): 'ok' | 'held' | 'not-owned' {
    const holder = this.held.get(addr);
    if (holder !== undefined) return holder === ident ? 'ok' : 'held';
    const i = lastStartAtOrBefore(this.free, addr);
    if (i < 0 || addr >= this.free[i]!.end) return 'not-owned';
    this.takeFree(i, addr);
    this.held.set(addr, ident);
    return 'ok';
  }

  /** Mark `addr` held by `ident` whether or not it is ours and free (restoring persisted holdings). */
  hold(addr: Address, ident: string): void {
    const i = lastStartAtOrBefore(this.free, addr);
    if (i >= 0 && addr < this.free[i]!.end) this.takeFree(i, addr);
    this.held.set(addr, ident);
  }

  /** Who holds `addr`, if anyone. */
  holderOf(addr: Address): string | undefined {
    return this.held.get(addr);
  }

  /** Every held address and its ident. */
  holdings(): ReadonlyMap<Address, string> {
    return this.held;
  }

  /** Free `addr`. Returns false if it was not held. It becomes allocatable again if we still own it. */
  release(addr: Address): boolean {
    if (!this.held.delete(addr)) return false;
    if (this.owns(addr)) this.addFree(addr, addr + 1);
    return true;
  }

  /** Free addresses inside `r`. */
  freeIn(r: AddressRange): number {
    let n = 0;
    let i = Math.max(0, lastStartAtOrBefore(this.free, r.start));
    for (; i < this.free.length && this.free[i]!.start < r.end; i++) n += rangeSize(rangeIntersect(this.free[i]!, r));
    return n;
  }

  /** The largest free span inside `r` (the lowest one on ties), or undefined when there is none. */
  largestFreeIn(r: AddressRange): AddressRange | undefined {
    let best: AddressRange | undefined;
    let i = Math.max(0, lastStartAtOrBefore(this.free, r.start));
    for (; i < this.free.length && this.free[i]!.start < r.end; i++) {
      const x = rangeIntersect(this.free[i]!, r);
      if (rangeSize(x) > 0 && (!best || rangeSize(x) > rangeSize(best))) best = x;
    }
    return best;
  }

  /** Remove `r` (which must be entirely free) from our space: it is being donated. */
  give(r: AddressRange): void {
    if (this.freeIn(r) !== rangeSize(r)) throw new Error('Space.give: range is not entirely free');
    this.free = subtract(this.free, r);
    this.owned = subtract(this.owned, r);
  }

  /** Sum of free addresses. */
  get freeCount(): number {
    return this.free.reduce((n, s) => n + s.end - s.start, 0);
  }

  private takeFree(i: number, addr: Address): void {
    const s = this.free[i]!;
    if (s.start === addr && s.end === addr + 1) this.free.splice(i, 1);
    else if (s.start === addr) s.start++;
    else if (s.end === addr + 1) s.end--;
    else {
      this.free.splice(i + 1, 0, { start: addr + 1, end: s.end });
      s.end = addr;
    }
  }

  private addFree(start: number, end: number): void {
    const i = lastStartAtOrBefore(this.free, start);
    const prev = this.free[i];
    const next = this.free[i + 1];
    if (prev && prev.end === start) {
      prev.end = end;
      if (next && next.start === end) {
        prev.end = next.end;
        this.free.splice(i + 1, 1);
      }
    } else if (next && next.start === end) {
      next.start = start;
    } else {
      this.free.splice(i + 1, 0, { start, end });
    }
  }
}

/** Index of the last span starting at or before `addr`, or -1. */
function lastStartAtOrBefore(spans: readonly Span[], addr: number): number {
  let lo = 0;
  let hi = spans.length - 1;
  let best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (spans[mid]!.start <= addr) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}

function normalise(ranges: readonly AddressRange[]): Span[] {
  const sorted = ranges
    .filter((r) => r.end > r.start)
    .map((r) => ({ start: r.start, end: r.end }))
    .sort((a, b) => a.start - b.start);
  const out: Span[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else out.push(r);
  }
  return out;
}

function subtract(spans: readonly Span[], r: AddressRange): Span[] {
  const out: Span[] = [];
  for (const s of spans) {
    if (s.end <= r.start || s.start >= r.end) out.push({ ...s });
    else {
      if (s.start < r.start) out.push({ start: s.start, end: r.start });
      if (s.end > r.end) out.push({ start: r.end, end: s.end });
    }
  }
  return out;
}

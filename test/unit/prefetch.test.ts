// How many tasks a runner holds beyond its slots (runner/prefetch.ts): about 100 ms of work by the
// mean of its last attempts, at most 8 × slots, none before it knows or for tasks of a second.
import { describe, expect, it } from "vitest";
import { PREFETCH, Prefetch } from "../../runner/prefetch";

const after = (...ms: number[]) => {
  const p = new Prefetch();
  for (const d of ms) p.note(d);
  return p;
};

describe("prefetch", () => {
  it("holds nothing extra before an attempt has ended, and nothing for tasks of a second or more", () => {
    expect(new Prefetch().depth(4)).toBe(0);
    expect(after(1000, 1200).depth(4)).toBe(0);
  });

  it("holds about 100 ms of work beyond its slots, at most 8 × slots", () => {
    expect(after(25, 25).depth(1)).toBe(4); // 4 × 25 ms behind one slot
    expect(after(50).depth(2)).toBe(4); // 4 × 50 ms over two slots
    expect(after(0.3, 0.2).depth(2)).toBe(16); // a no-op: the cap
    expect(after(0).depth(3)).toBe(24);
  });

  it("judges by the mean of the last attempts: a few heavy ones among light ones shrink it", () => {
    const tiles = after(...Array.from({ length: 12 }, () => 10), 300, 300, 300, 300);
    // The median (10 ms) would hold 10 tiles (a second of heavy ones); the mean (~82 ms) holds 1.
    expect(tiles.depth(1)).toBe(1);
    // Only the last PREFETCH.window attempts count: light ones again bring it back.
    for (let i = 0; i < PREFETCH.window; i++) tiles.note(10);
    expect(tiles.depth(1)).toBe(8);
  });
});

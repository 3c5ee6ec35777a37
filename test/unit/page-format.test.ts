// The status page's pure formatting (public/format.js, plain JavaScript the browser loads as is):
// durations as the CLI writes them, and the cooled-down line of a runner or device, shown only
// while its cooled_until is ahead of now.
import { describe, expect, it } from "vitest";
import { formatDuration } from "../../core/units";

interface PageFormat {
  duration: (ms: number) => string;
  time: (ms: number | null) => string;
  cooledDown: (until: number | null | undefined, now: number) => string | null;
}
// A path TypeScript does not resolve: the page's modules are JavaScript without declarations.
const path = "../../public/format.js";
const page = (await import(/* @vite-ignore */ path)) as PageFormat;

const now = Date.UTC(2026, 11, 1, 12);

describe("status page formatting", () => {
  it("writes durations as the CLI does", () => {
    for (const ms of [0, 400, 42_000, 59_600, 125_000, 3_599_000, 3_660_000, 90_000_000])
      expect(page.duration(ms), String(ms)).toBe(formatDuration(ms));
  });

  it("says until when and how long a device is cooled down, while that is ahead of now", () => {
    const until = now + 130_000;
    expect(page.cooledDown(until, now)).toBe(`cooled down (until ${new Date(until).toLocaleTimeString()}, 2m10s left)`);
    expect(page.cooledDown(now + 3_600_000, now)).toMatch(/^cooled down \(until .+, 1h00m left\)$/);
    expect(page.cooledDown(now, now)).toBeNull();
    expect(page.cooledDown(now - 1, now)).toBeNull();
    expect(page.cooledDown(null, now)).toBeNull();
    expect(page.cooledDown(undefined, now)).toBeNull(); // a coordinator from before cool-downs
  });
});

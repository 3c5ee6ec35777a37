// Capability matching and the RAM-driven slot count: pure functions, no runner or coordinator.
import { describe, expect, it } from "vitest";
import { autoSlots } from "../../runner/device";
import { formatSize } from "../../core/units";
import { meets, unmet, whyWaiting, type Capabilities } from "../../core/match";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const pc: Capabilities = { memory: 16 * GiB, cores: 8, labels: ["fast"], arch: "x64", platform: "linux" };
const phone: Capabilities = { memory: 4 * GiB, cores: 8, labels: [], arch: "arm64", platform: "android" };

describe("requires", () => {
  it("names every requirement a runner misses", () => {
    expect(
      unmet({ labels: ["gpu", "fast"], memory: 32 * GiB, cores: 16, arch: "arm64", platform: "darwin" }, pc),
    ).toEqual(["label gpu", "32 GiB of memory", "16 cores", "arch arm64", "platform darwin"]);
    expect(unmet(undefined, pc)).toEqual([]);
    expect(meets({ labels: ["fast"], memory: 16 * GiB, cores: 8 }, pc)).toBe(true);
    expect(unmet({ memory: 1.5 * GiB }, { ...phone, memory: GiB })).toEqual(["1.5 GiB of memory"]);
    expect([512, 1536, 128 * MiB, 22.24 * GiB].map(formatSize)).toEqual(["512 B", "1.5 KiB", "128 MiB", "22.2 GiB"]);
  });

  it("accepts the usual spellings of an architecture and any case of a platform", () => {
    expect(meets({ arch: "aarch64", platform: "Android" }, phone)).toBe(true);
    expect(meets({ arch: "amd64" }, pc)).toBe(true);
    expect(meets({ arch: "x86_64" }, phone)).toBe(false);
  });

  it("says why no connected runner can take the work", () => {
    expect(whyWaiting({ labels: ["gpu"] }, [pc, phone])).toBe("no runner with label gpu");
    expect(whyWaiting(null, [])).toBe("no runner connected");
    expect(whyWaiting(null, [phone])).toBeNull();
    expect(whyWaiting({ arch: "arm64" }, [pc, phone])).toBeNull();
    // Each requirement is met by some runner, never both by one.
    expect(whyWaiting({ arch: "arm64", labels: ["fast"] }, [pc, phone])).toBe(
      "no single runner has all of: label fast, arch arm64",
    );
  });
});

describe("autoSlots", () => {
  const policy = { ramPerSlotBytes: 128 * MiB, reserveRamBytes: 512 * MiB };

  it("is min(cores, (free RAM - reserve) / RAM per slot), at least 1", () => {
    expect(autoSlots(8, 512 * MiB + 3 * 128 * MiB, policy)).toBe(3);
    expect(autoSlots(8, 512 * MiB + 3 * 128 * MiB - 1, policy)).toBe(2);
    expect(autoSlots(2, 16 * GiB, policy)).toBe(2);
    expect(autoSlots(4, 100 * MiB, policy)).toBe(1);
    expect(autoSlots(4, 100 * MiB, { ramPerSlotBytes: 32 * MiB, reserveRamBytes: 0 })).toBe(3);
  });
});

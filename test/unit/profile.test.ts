import { describe, expect, it } from "vitest";
import { Profile } from "../../worker/run-host/profile.js";
import { metaMap } from "../helpers/meta-map";

/** SQL storage whose exec answers its query back. */
const fakeSql = () => ({ exec: (query: string) => query, databaseSize: 4096 });

describe("Profile", () => {
  it("counts statements through its sql and messages by their type", () => {
    const profile = new Profile();
    const sql = profile.counting(fakeSql());
    expect(sql.exec("SELECT 1")).toBe("SELECT 1");
    sql.exec("SELECT 2");
    expect(sql.databaseSize).toBe(4096);
    profile.message('{"type":"results","results":[]}');
    profile.message('{"type":"results","results":[]}');
    profile.message('{"type":"want","want":2}');
    profile.message("not json");
    profile.message(new ArrayBuffer(4));
    expect(profile.current(metaMap())).toEqual({
      messages: 5,
      statements: 2,
      frames: { results: 2, want: 1, other: 1, binary: 1 },
    });
  });

  it("stops counting when the run ends, and a profile of the object started again reads the final counts", () => {
    const meta = metaMap();
    const before = new Profile();
    const sql = before.counting(fakeSql());
    sql.exec("UPDATE tasks");
    before.message('{"type":"results"}');
    before.stop(meta);
    sql.exec("SELECT summary");
    before.message('{"type":"want"}');
    const final = { messages: 1, statements: 1, frames: { results: 1 } };
    expect(before.current(meta)).toEqual(final);
    before.stop(meta); // a second end changes nothing
    expect(JSON.parse(meta.values.get("profile")!)).toEqual(final);

    const after = new Profile(); // the object evicted once idle, and started again by a read
    after.counting(fakeSql()).exec("SELECT summary");
    expect(after.current(meta)).toEqual(final);
  });

  it("counts from nothing in an object started again before its run ended", () => {
    const meta = metaMap();
    const profile = new Profile();
    profile.counting(fakeSql()).exec("SELECT 1");
    expect(profile.current(meta)).toEqual({ messages: 0, statements: 1, frames: {} });
    expect(meta.values.has("profile")).toBe(false);
  });
});

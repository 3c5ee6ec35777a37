// The one error convention of Durable Object calls (worker/errors.ts): each code has one HTTP
// status, and `valueOf` gives a success's value or throws the HTTPException of a refusal.
import { HTTPException } from "hono/http-exception";
import { describe, expect, it } from "vitest";
import { httpStatus, ok, refusal, valueOf } from "../../worker/errors";

describe("errors", () => {
  it("maps each code to its HTTP status", () => {
    expect(httpStatus("not_found")).toBe(404);
    expect(httpStatus("conflict")).toBe(409);
  });

  it("gives a success's value, and throws a refusal as the HTTPException of its code with its message", () => {
    expect(valueOf(ok({ status: "paused" }))).toEqual({ status: "paused" });
    const thrown = (() => {
      try {
        valueOf(refusal("conflict", 'run is succeeded: cannot handle "pause"'));
      } catch (e) {
        return e;
      }
    })();
    expect(thrown).toBeInstanceOf(HTTPException);
    expect(thrown).toMatchObject({ status: 409, message: 'run is succeeded: cannot handle "pause"' });
  });
});

/**
 * The device's credential over the runner's life: at start-up the saved one for this
 * coordinator, else one enrolled with DISTRO_ENROLL, else with the development token; with none
 * of these the runner cannot start (UsageError, exit 2). Runner processes of one device that
 * enroll at the same moment take turns on a lock file beside the credential, so one enrollment
 * token serves them all. When the coordinator no longer knows the credential (401: its state was
 * reset), a new one is enrolled if the runner has a token, with the development token under the
 * same device id (the coordinator lets it claim an id nobody holds), so the runner keeps its ids.
 * The links (link.ts) and the coordinator HTTP (blobs.ts) ask `credential()` at each use.
 */
import { UsageError } from "./config.js";
import {
  coordinatorOrigin,
  credentialFile,
  loadCredential,
  makeCredentialDirs,
  saveCredential,
  type SavedCredential,
} from "./credential.js";
import { enroll, EnrollError, HOW_TO_ENROLL, type EnrollOptions, type EnrollToken } from "./enroll.js";
import { lockHolder, tryLock, unlock } from "./files.js";
import type { LinkAuth } from "./link.js";
import type { Logger } from "./log.js";

export interface AuthOptions {
  coordinator: URL;
  configDir: string;
  /** The runner's name, which the coordinator makes the device id from. */
  name: string;
  enrollToken: string | undefined;
  devToken: string | undefined;
  log: Logger;
  /** Back-off and timeout of the enroll exchange (tests shorten them). */
  enroll?: Omit<EnrollOptions, "log">;
  /** How often a process waiting for another one's enrollment looks again (default 200 ms). */
  pollMs?: number;
}

export class DeviceAuth implements LinkAuth {
  /** Where this coordinator's credential is kept. */
  readonly file: string;
  private readonly origin: string;
  private saved: SavedCredential | undefined;
  private renewal: Promise<string | undefined> | undefined;

  constructor(private readonly options: AuthOptions) {
    this.origin = coordinatorOrigin(options.coordinator);
    this.file = credentialFile(options.configDir, options.coordinator);
  }

  /**
   * Loads the saved credential or enrolls one. Throws UsageError when there is none and nothing
   * to enroll with, EnrollError when the coordinator refuses the token.
   */
  async obtain(): Promise<SavedCredential> {
    const { log, enrollToken } = this.options;
    const saved = loadCredential(this.file, this.origin);
    if (saved) {
      const unused = enrollToken ? " (DISTRO_ENROLL is not used: the device is enrolled already)" : "";
      log.info(`device ${saved.device}: credential for ${this.origin} from ${this.file}${unused}`, {
        event: "credential",
        device: saved.device,
      });
      return (this.saved = saved);
    }
    const using = this.enrollWith();
    if (!using)
      throw new UsageError(
        `this device has no credential for ${this.origin} (none in ${this.file}) and nothing to enroll with: ` +
          HOW_TO_ENROLL,
      );
    return (this.saved = await this.enrollTurn(using, undefined));
  }

  /** The credential now (obtain() first). */
  credential(): string {
    return this.current.credential;
  }

  get device(): string {
    return this.current.device;
  }

  /** The labels the device's enrollment gave it. */
  get labels(): string[] {
    return this.current.labels;
  }

  /**
   * The coordinator answered 401 to `stale`. One renewal serves every link that asks: a link
   * asking with a credential already replaced gets the new one at once.
   */
  renew(stale: string): Promise<string | undefined> {
    if (stale !== this.current.credential) return Promise.resolve(undefined);
    this.renewal ??= this.enrollAgain(stale).finally(() => (this.renewal = undefined));
    return this.renewal;
  }

  /**
   * The coordinator revoked the device (`detail` says how it said so): the line the runner ends
   * with. The credential stays in its file, so that a restart is refused as well and says why.
   */
  revoked(detail: string): string {
    return (
      `device ${this.current.device} was revoked (${detail}); to join again, delete ${this.file} and enroll ` +
      "the device anew with DISTRO_ENROLL=<token from `distro runners add`>"
    );
  }

  private get current(): SavedCredential {
    if (!this.saved) throw new Error("DeviceAuth: obtain() the credential first");
    return this.saved;
  }

  /** DISTRO_ENROLL if given, else the development token. */
  private enrollWith(): EnrollToken | undefined {
    const { enrollToken, devToken } = this.options;
    if (enrollToken) return { token: enrollToken, source: "DISTRO_ENROLL" };
    if (devToken) return { token: devToken, source: "the development token (--token)", dev: true };
    return undefined;
  }

  private async enrollAgain(stale: string): Promise<string | undefined> {
    const { device } = this.current;
    const using = this.enrollWith();
    if (!using)
      return `this device's credential is unknown to the coordinator ${this.origin}; enroll it again with DISTRO_ENROLL (a token from \`distro runners add\`)`;
    this.options.log.info(
      `the coordinator ${this.origin} does not know device ${device}'s credential (its state reset?): ` +
        `enrolling again with ${using.source}`,
      { event: "re-enroll", device },
    );
    try {
      this.saved = await this.enrollTurn(using, stale, device);
      return undefined;
    } catch (e) {
      return `this device's credential is unknown to the coordinator ${this.origin}, and enrolling again failed: ${(e as Error).message}`;
    }
  }

  /**
   * Enrolls, unless another process of the device does so meanwhile: under the enroll lock, and
   * only while the file holds no credential other than `stale` (none, at start-up). With the
   * development token it asks for `device` (the id the coordinator forgot), or a new id when
   * that one is held.
   */
  private async enrollTurn(using: EnrollToken, stale: string | undefined, device?: string): Promise<SavedCredential> {
    const { log, pollMs = 200 } = this.options;
    const lock = `${this.file}.lock`;
    const fresh = () => {
      const saved = loadCredential(this.file, this.origin);
      return saved && saved.credential !== stale ? saved : undefined;
    };
    let waiting = false;
    for (;;) {
      const other = fresh();
      if (other) return this.adopted(other);
      makeCredentialDirs(this.file);
      if (tryLock(lock, process.pid)) break;
      if (!waiting) log.info(`enroll: waiting for runner process ${lockHolder(lock) ?? "?"} to enroll this device`);
      waiting = true;
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    // Let go of the lock however the process ends, a signal while enrolling included (cli.ts).
    const release = () => unlock(lock, process.pid);
    process.once("exit", release);
    try {
      const other = fresh(); // placed between our last look and taking the lock
      if (other) return this.adopted(other);
      const answer = await this.exchange(using, using.dev ? device : undefined);
      const record: SavedCredential = { coordinator: this.origin, ...answer, enrolled_at: Date.now() };
      if (!saveCredential(this.file, record, stale === undefined ? "first" : "replace")) {
        return this.adopted(loadCredential(this.file, this.origin) ?? record);
      }
      const labels = answer.labels.length > 0 ? `, labels ${answer.labels.join(",")}` : "";
      const how = answer.enrollment ? `enrollment ${answer.enrollment}` : using.source;
      log.info(`enrolled as device ${answer.device} with ${how}${labels}; credential saved in ${this.file}`, {
        event: "enrolled",
        device: answer.device,
        enrollment: answer.enrollment,
      });
      return record;
    } finally {
      process.off("exit", release);
      release();
    }
  }

  /** The enroll exchange, asking for `device`; a device id held by another credential is given up. */
  private async exchange(using: EnrollToken, device: string | undefined) {
    const { coordinator, name, log } = this.options;
    const options = { log, ...this.options.enroll };
    try {
      return await enroll(coordinator, using, { name, device }, options);
    } catch (e) {
      if (!(e instanceof EnrollError && e.status === 403 && device !== undefined)) throw e;
      log.info(`enroll: device id ${device} is not to be had (${e.message}); enrolling under a new one`);
      return enroll(coordinator, using, { name }, options);
    }
  }

  private adopted(saved: SavedCredential): SavedCredential {
    this.options.log.info(`device ${saved.device}: credential enrolled by another runner process of this device`, {
      event: "credential",
      device: saved.device,
    });
    return saved;
  }
}

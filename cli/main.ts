/** The `distro` bin's entry: bin/distro.js in the repository, the bundle of the `distro` package. */
import { runCli } from "./distro.js";

runCli();

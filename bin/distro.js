#!/usr/bin/env node
import { runCli } from "../dist/cli/distro.js";

runCli();

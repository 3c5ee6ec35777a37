#!/usr/bin/env node
import "../dist/cli/distro.js";

// A stand-in for Flamenco Manager's job compiler runtime, to run a job compiler script in Node.
//
//   node flamenco_harness.js SCRIPT type             prints the script's JOB_TYPE as JSON
//   node flamenco_harness.js SCRIPT compile < JOB    compiles JOB ({name, settings, metadata} as
//                                                    JSON) and prints {settings, tasks} as JSON
//
// It gives the script what the Manager's runtime gives it: `author` (Task, Command), `path`
// (basename, dirname, join, stem), `process.platform` and `print`. A compile error (what the script
// throws) goes to stderr with exit status 1, as the Manager answers it with a 400.

"use strict";
const fs = require("fs");
const nodePath = require("path");
const vm = require("vm");

function makeAuthor() {
    let next = 0;
    return {
        Task(name, type) {
            if (!String(name).trim() || !String(type).trim()) throw "author.Task(name, type): both are required";
            return {
                uuid: `task-${++next}`, name: String(name).trim(), type: String(type).trim(),
                commands: [], dependencies: [],
                addCommand(command) { this.commands.push(command); },
                addDependency(task) { this.dependencies.push(task); },
            };
        },
        Command(name, parameters, totalStepCount) {
            return { name, parameters, total_step_count: totalStepCount || 0 };
        },
    };
}

const path = {
    basename: p => nodePath.posix.basename(p),
    dirname: p => nodePath.posix.dirname(p),
    join: (...parts) => nodePath.posix.join(...parts),
    stem: p => nodePath.posix.parse(p).name,
};

function load(script) {
    const context = vm.createContext({
        author: makeAuthor(), path, process: { platform: process.platform },
        print: (...args) => console.error(...args),
    });
    // `const JOB_TYPE` stays in the script's scope: hand it out from there.
    vm.runInContext(fs.readFileSync(script, "utf8") + "\n;this.JOB_TYPE = JOB_TYPE;", context, { filename: script });
    return context;
}

function compile(context, submitted) {
    const tasks = [];
    const job = {
        name: submitted.name, settings: submitted.settings || {}, metadata: submitted.metadata || {},
        addTask(task) { tasks.push(task); },
    };
    context.compileJob(job);
    return {
        settings: job.settings,
        tasks: tasks.map(t => ({
            name: t.name, type: t.type, commands: t.commands,
            dependencies: t.dependencies.map(d => d.name),
        })),
    };
}

function main([script, mode]) {
    const context = load(script);
    if (mode === "type") return context.JOB_TYPE;
    if (mode === "compile") return compile(context, JSON.parse(fs.readFileSync(0, "utf8")));
    throw `unknown mode ${mode}: "type" or "compile"`;
}

try {
    process.stdout.write(JSON.stringify(main(process.argv.slice(2))) + "\n");
} catch (err) {
    process.stderr.write(`${err}\n`);
    process.exitCode = 1;
}

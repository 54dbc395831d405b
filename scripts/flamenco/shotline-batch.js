// Shotline on a Flamenco 3 farm: generate a .blend's shots, then check them and render its preview.
//
// Install: copy this file into the Manager's `scripts` folder (the job type is the file's name,
// "shotline-batch") and restart the Manager. Submit with Shotline's addon/flamenco.py.
//
// Tasks, and why:
//
// - One task per shot: Blender in background mode runs scripts/batch.py on the .blend with
//   `--generate --shot NAME`, which generates that shot (if it has no take yet), places the take and
//   saves the .blend.
// - The shot tasks run one after the other, not side by side. A take exists for Shotline only as a
//   record in the .blend (addon/blend/runtime.py `_take_of`): a take made by a process that does
//   not save the file cannot be adopted later, and generating again with the same request re-uses
//   a take only when its record is there (and never for the local animatic, which is re-rendered).
//   So every shot task must save its take into the .blend, and two tasks saving it at the same
//   time would lose one's take: one writer at a time. Also, opening the .blend adopts the jobs its
//   journal holds as running: a task opening it while another's job runs would download that job
//   a second time. Services run their jobs remotely; the farm frees the director's machine and
//   gives each shot its own status, log and retry.
// - The assemble task depends on every shot task. It renders the preview (when
//   `preview_output` is set) and then runs the batch without --generate: it never asks for a
//   take; it opens the .blend (a job a killed shot task left in the journal is kept in it, for
//   Blender to finish when the director opens it), saves it, prints every shot's status and
//   fails the job when a shot failed.
// - Blender runs as `{blender} {blenderArgs} FILE ...`: both are the Manager's variables, and
//   `{blenderArgs}` must hold -b (the Manager's default is "-b -y").
//
// Retries never pay twice. Flamenco retries a task whose command exits non-zero, so:
// - with --shot the batch exits 0 when the shot's generation failed: a retry would send a new,
//   paid request (a "submission uncertain" one may already exist and be billed). The failure is
//   in the task log, kept in the .blend (the shot's status and message) and fails the assemble
//   task. The director decides in Blender;
// - a shot task exits non-zero when Blender itself failed (file missing, Shotline not enabled,
//   the save refused, a crash): a retry re-runs the shot, and does nothing when the shot already
//   has its take, since the batch generates only shots without one (and never uses --force).
// - the assemble task only reads and renders: retrying it is always safe.

const JOB_TYPE = {
    label: "Shotline Batch",
    description: "Generate the takes of a .blend's shots with Shotline, then render its preview",
    settings: [
        { key: "blendfile", type: "string", subtype: "file_path", required: true,
          description: "The .blend on shared storage; its takes go into its media folder" },
        { key: "shots", type: "string", required: true,
          description: "The names of the shots to generate, as a JSON list of strings" },
        { key: "batch_script", type: "string", subtype: "file_path", required: true,
          description: "Shotline's scripts/batch.py on shared storage" },
        { key: "blender_cmd", type: "string", default: "{blender}", visible: "web",
          description: "The Blender to run (with Shotline installed and enabled)" },
        { key: "service", type: "string", default: "",
          description: "The service for every shot (empty: each shot's own)" },
        { key: "model", type: "string", default: "",
          description: "The service's model (empty: each shot's own)" },
        { key: "online", type: "bool", default: false,
          description: "Allow network access (cloud services need it)" },
        { key: "preview_output", type: "string", subtype: "file_path", default: "",
          description: "Where the assemble task renders the preview, with the .blend's output settings (empty: none)" },
    ],
};

function compileJob(job) {
    const settings = job.settings;
    const shots = shotNames(settings.shots);
    const generate = ["--generate"];
    if (settings.service) generate.push("--service", settings.service);
    if (settings.model) generate.push("--model", settings.model);
    if (settings.online) generate.push("--online");

    const shotTasks = [];
    for (const name of shots) {
        const task = author.Task(`shot: ${name}`, "blender");
        task.addCommand(batch(settings, generate.concat(["--shot", name])));
        const previous = shotTasks[shotTasks.length - 1];
        if (previous) task.addDependency(previous); // one writer of the .blend at a time
        shotTasks.push(task);
        job.addTask(task);
    }

    const assemble = author.Task("assemble", "blender");
    if (settings.preview_output) {
        assemble.addCommand(author.Command("blender-render", {
            exe: settings.blender_cmd || "{blender}",
            exeArgs: "{blenderArgs}",
            argsBefore: [],
            blendfile: settings.blendfile,
            args: ["--render-output", settings.preview_output, "--render-anim"],
        }));
    }
    assemble.addCommand(batch(settings, []));
    for (const task of shotTasks) assemble.addDependency(task);
    job.addTask(assemble);
}

// Blender in background mode running Shotline's batch on the .blend; it saves over the .blend.
function batch(settings, options) {
    return author.Command("blender-render", {
        exe: settings.blender_cmd || "{blender}",
        exeArgs: "{blenderArgs}",
        argsBefore: [],
        blendfile: settings.blendfile,
        args: ["--python", settings.batch_script, "--"].concat(options),
    });
}

function shotNames(text) {
    let names;
    try {
        names = JSON.parse(text);
    } catch (err) {
        throw `shots: not a JSON list of shot names (${err})`;
    }
    if (!Array.isArray(names) || names.length === 0 || !names.every(n => typeof n === "string" && n)) {
        throw "shots: a JSON list of one or more shot names";
    }
    if (new Set(names).size !== names.length) {
        throw "shots: a shot is named twice";
    }
    return names;
}

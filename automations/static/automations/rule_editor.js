/* The rule editor: trigger options, conditions and steps edited as form fields generated from the type
   registries' schema (embedded in the page as #rule-editor-data; no type is named here), written back as
   JSON into the form's own text areas (trigger_config, conditions, steps), which stay the "advanced"
   view. Without JavaScript those text areas are the form. Plain JavaScript, no external assets; every
   text a rule's author or a record wrote goes into the page through textContent or attribute values,
   never through innerHTML. */
"use strict";
(function () {
    const PARTS = ["trigger_config", "conditions", "steps"];
    const MAX_DEPTH = 5;
    const UNITS = [["days", 86400], ["hours", 3600], ["minutes", 60], ["seconds", 1]];
    const CONDITION_KEYS = {field: "Field", op: "Operator", value: "Value", match: "Match", rules: "Conditions"};

    /* ------------------------------------------------------------------ small DOM helpers */

    function h(tag, props, ...children) {
        const node = document.createElement(tag);
        Object.entries(props || {}).forEach(function ([key, value]) {
            if (value === undefined || value === null || value === false) {
                return;
            }
            if (key === "text") {
                node.textContent = value;
            } else if (key === "className") {
                node.className = value;
            } else if (key === "on") {
                Object.entries(value).forEach(function ([event, handler]) {
                    node.addEventListener(event, handler);
                });
            } else if (key === "dataset") {
                Object.assign(node.dataset, value);
            } else if (key === "value") {
                node.value = value;
            } else if (key === "checked" || key === "selected" || key === "multiple" || key === "hidden") {
                node[key] = Boolean(value);
            } else {
                node.setAttribute(key, value === true ? "" : String(value));
            }
        });
        children.flat().forEach(function (child) {
            if (child === null || child === undefined || child === false) {
                return;
            }
            node.append(child instanceof Node ? child : document.createTextNode(String(child)));
        });
        return node;
    }

    function option(value, label, selected) {
        return h("option", {value: value, text: label, selected: selected});
    }

    function button(label, onClick, props) {
        return h("button", Object.assign({type: "button", className: "rule-button", on: {click: onClick}}, props || {}), label);
    }

    function isObject(value) {
        return value !== null && typeof value === "object" && !Array.isArray(value);
    }

    function clone(value) {
        return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
    }

    function byName(list) {
        const found = {};
        (list || []).forEach(function (item) {
            found[item.name] = item;
        });
        return found;
    }

    function cookie(name) {
        const match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
        return match ? decodeURIComponent(match[1]) : "";
    }

    function durationText(seconds) {
        let left = Math.abs(Math.trunc(seconds));
        if (!left) {
            return "0 seconds";
        }
        const parts = [];
        [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]].forEach(function ([name, size]) {
            const count = Math.floor(left / size);
            left -= count * size;
            if (count) {
                parts.push(count + " " + name + (count === 1 ? "" : "s"));
            }
        });
        return parts.join(" ");
    }

    /* ------------------------------------------------------------------ the editor */

    function RuleEditor(data) {
        const schema = data.schema;
        const triggerTypes = byName(schema.triggers);
        const stepTypes = byName(schema.steps);
        const operators = byName((schema.operators || []).map(function (op) {
            return Object.assign({name: op.op}, op);
        }));
        const form = document.getElementById("automationrule_form");
        const areas = {};
        PARTS.forEach(function (name) {
            areas[name] = document.getElementById("id_" + name);
        });
        const triggerSelect = document.getElementById("id_trigger_type");
        const entitySelect = document.getElementById("id_entity");
        const workspaceSelect = document.getElementById("id_workspace");

        let entity = data.entity;
        let workspaceId = data.workspace_id;
        let errors = Object.assign({}, data.errors || {});
        let mode = "form";
        const state = {trigger: {}, conditions: {}, steps: []};
        const configCache = {trigger: {}, steps: []};  // earlier configs per type, kept when the type changes
        let errorSlots = {};
        const blocks = {};
        let occurrencesTimer = null;

        /* -------------------------------------------------------------- state <-> the text areas */

        function parseAreas() {
            const parsed = {};
            for (const name of PARTS) {
                const text = areas[name].value.trim();
                if (!text) {
                    parsed[name] = name === "steps" ? [] : {};
                    continue;
                }
                try {
                    parsed[name] = JSON.parse(text);
                } catch (error) {
                    return {error: name.replace("_", " ") + ": " + error.message};
                }
            }
            const shapes = {trigger_config: isObject, conditions: isObject, steps: Array.isArray};
            for (const name of PARTS) {
                if (parsed[name] === null) {
                    parsed[name] = name === "steps" ? [] : {};
                }
                if (!shapes[name](parsed[name])) {
                    return {error: name.replace("_", " ") + " must be " + (name === "steps" ? "a list." : "an object.")};
                }
            }
            if (parsed.steps.some(function (step) { return !isObject(step); })) {
                return {error: "each step must be an object {\"type\": …, \"config\": {…}}."};
            }
            return {value: parsed};
        }

        function sync() {
            areas.trigger_config.value = JSON.stringify(state.trigger, null, 2);
            areas.conditions.value = JSON.stringify(state.conditions, null, 2);
            areas.steps.value = JSON.stringify(state.steps, null, 2);
        }

        function changed() {
            sync();
        }

        /* -------------------------------------------------------------- errors beside their inputs */

        function errorList(messages) {
            return h("ul", {className: "errorlist"}, messages.map(function (message) {
                return h("li", {text: message});
            }));
        }

        function slot(path) {
            const node = h("div", {className: "rule-error-slot", dataset: {path: path}});
            errorSlots[path] = node;
            return node;
        }

        function placeErrors() {
            Object.values(errorSlots).forEach(function (node) {
                node.replaceChildren();
                node.closest(".rule-field, .rule-step, .rule-condition")?.classList.remove("has-error");
                node.closest(".rule-step")?.classList.remove("has-error");
            });
            Object.entries(errors).forEach(function ([key, messages]) {
                let path = key.replace(/\.non_field_errors$/, "");
                while (path && !errorSlots[path]) {
                    path = path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : "";
                }
                const target = errorSlots[path] || errorSlots[key.split(".")[0]] || errorSlots._general;
                if (!target) {
                    return;
                }
                const rest = path && path !== key ? key.slice(path.length + 1).replace(/^config\./, "") : "";
                const label = CONDITION_KEYS[rest] || rest;
                target.append(errorList(messages.map(function (message) {
                    return label && label !== "non_field_errors" ? label + ": " + message : message;
                })));
                target.closest(".rule-field, .rule-step, .rule-condition")?.classList.add("has-error");
                target.closest(".rule-step")?.classList.add("has-error");
            });
        }

        function clearError(path) {
            let removed = false;
            Object.keys(errors).forEach(function (key) {
                if (key === path || key.startsWith(path + ".")) {
                    delete errors[key];
                    removed = true;
                }
            });
            if (removed) {
                placeErrors();
            }
        }

        /* -------------------------------------------------------------- choices drawn from the entity */

        function entityFields(filter) {
            return ((entity && entity.fields) || []).filter(filter || function () { return true; });
        }

        function choicesFrom(source) {
            if (source === "timezones") {
                return schema.timezones.map(function (name) { return [name, name.replace(/_/g, " ")]; });
            }
            if (!entity) {
                return null;
            }
            if (source === "fields") {
                return entityFields().map(function (f) { return [f.name, fieldLabel(f)]; });
            }
            if (source === "moment_fields") {
                return entityFields(function (f) { return f.is_moment; }).map(function (f) { return [f.name, fieldLabel(f)]; });
            }
            if (source === "status_options") {
                return entity.status_options.length ? entity.status_options.map(function (o) { return [o, o]; }) : null;
            }
            if (source === "members") {
                return entity.members.map(function (name) { return [name, name]; });
            }
            return null;
        }

        function fieldLabel(field) {
            return field.label && field.label !== field.name ? field.label + " (" + field.name + ")" : field.name;
        }

        function fieldSpec(name) {
            return entityFields().find(function (f) { return f.name === name; }) || null;
        }

        /* -------------------------------------------------------------- template variables */

        function variablesFor(stepIndex) {
            const groups = [];
            const fields = entityFields().map(function (f) { return {text: f.name, title: "The record's " + f.name}; });
            if (fields.length) {
                groups.push({label: "Record", items: fields});
            }
            groups.push({label: "About the record", items: [
                {text: "id"}, {text: "created_at"}, {text: "updated_at"},
                {text: "entity.name"}, {text: "automation.name"},
            ].concat(entityFields().slice(0, 1).map(function (f) {
                return {text: "old." + f.name, title: "The value before the change (updates only)"};
            }))});
            const trigger = triggerTypes[triggerSelect.value];
            if (trigger && trigger.time_based) {
                groups.push({label: "Schedule", items: [{text: "occurrence", title: "The time this run is for (ISO 8601)"}]});
            }
            for (let index = 0; index < stepIndex; index++) {
                const kind = stepTypes[state.steps[index].type];
                if (!kind || !kind.result_keys.length) {
                    continue;
                }
                groups.push({
                    label: "Step " + (index + 1) + " · " + kind.label,
                    items: kind.result_keys.map(function (key) { return {text: "steps[" + index + "]." + key}; }),
                });
            }
            return groups;
        }

        function variablesHelper(input, stepIndex) {
            const details = h("details", {className: "rule-variables"});
            details.append(h("summary", {text: "Insert a variable"}));
            variablesFor(stepIndex).forEach(function (group) {
                const row = h("div", {className: "rule-variable-group"}, h("span", {className: "rule-variable-label", text: group.label + ":"}));
                group.items.forEach(function (item) {
                    row.append(button("{{ " + item.text + " }}", function () {
                        insertAtCursor(input, "{{ " + item.text + " }}");
                    }, {className: "rule-button rule-variable", title: item.title || "Insert {{ " + item.text + " }}"}));
                });
                details.append(row);
            });
            return details;
        }

        function insertAtCursor(input, text) {
            const start = input.selectionStart ?? input.value.length;
            const end = input.selectionEnd ?? input.value.length;
            input.value = input.value.slice(0, start) + text + input.value.slice(end);
            input.focus();
            input.setSelectionRange(start + text.length, start + text.length);
            input.dispatchEvent(new Event("input", {bubbles: true}));
        }

        /* -------------------------------------------------------------- one config option */

        function fieldRow(descriptor, control, path, extra) {
            const id = "rule_" + path.replace(/[^A-Za-z0-9_]/g, "_");
            const target = control.matches && control.matches("input, select, textarea") ? control : control.querySelector("input, select, textarea");
            if (target && !target.id) {
                target.id = id;
            }
            const label = h("label", {for: target ? target.id : null, className: descriptor.required ? "required" : null, text: descriptor.label + ":"});
            const help = [];
            if (descriptor.help) {
                help.push(descriptor.help);
            }
            const plain = descriptor.default !== null && descriptor.default !== undefined && descriptor.default !== "" &&
                !isObject(descriptor.default) && !Array.isArray(descriptor.default);
            if (plain && !/default/i.test(descriptor.help || "")) {
                help.push("Default: " + (descriptor.unit ? durationText(descriptor.default) : descriptor.default) + ".");
            }
            // Laid out as Django's own rows: label, help, errors, then the input.
            const row = h("div", {className: "form-row rule-field", dataset: {option: descriptor.name}},
                h("div", {className: "flex-container"},
                    label,
                    help.length ? h("div", {className: "help"}, h("div", {text: help.join(" ")})) : null,
                    slot(path),
                    h("div", {className: "rule-control"}, control, extra || null),
                ),
            );
            return row;
        }

        function selectControl(choices, value, blankLabel, onChange) {
            const select = h("select", {on: {change: function () { onChange(select.value); }}});
            if (blankLabel !== null) {
                select.append(option("", blankLabel, value === undefined || value === null || value === ""));
            }
            const known = choices.some(function ([v]) { return v === value; });
            if (value !== undefined && value !== null && value !== "" && !known) {
                select.append(option(String(value), String(value) + " (not in the list)", true));
            }
            choices.forEach(function ([v, label]) {
                select.append(option(v, label, v === value));
            });
            return select;
        }

        function secondsControl(descriptor, value, set) {
            const number = h("input", {type: "number", className: "vIntegerField", step: "any"});
            const unit = h("select", {className: "rule-unit"}, UNITS.map(function ([name, size]) { return option(String(size), name); }));
            let size = 1;
            if (typeof value === "number" && value !== 0) {
                size = UNITS.find(function ([, s]) { return value % s === 0; })[1];
            } else if (value === undefined || value === null) {
                size = 3600;
            }
            unit.value = String(size);
            number.value = typeof value === "number" ? String(value / size) : (value ?? "");
            function update() {
                if (number.value.trim() === "") {
                    set(undefined);
                    return;
                }
                const total = Number(number.value) * Number(unit.value);
                set(Number.isFinite(total) ? Math.round(total) : number.value);
            }
            number.addEventListener("input", update);
            unit.addEventListener("change", update);
            return h("span", {className: "rule-seconds"}, number, unit);
        }

        function typedValueControl(spec, value, set, stepIndex) {
            // A value for one field of the entity (update_field's new value): the input follows its type; a
            // text value may also be a template.
            const input = spec ? spec.input : "text";
            if (input === "option") {
                return selectControl(spec.options.map(function (o) { return [o, o]; }), value, "— (empty)", function (v) { set(v === "" ? null : v); });
            }
            if (input === "boolean") {
                const current = value === true ? "true" : value === false ? "false" : value ?? "";
                return selectControl([["true", "yes"], ["false", "no"]], current, "— (empty)", function (v) {
                    set(v === "true" ? true : v === "false" ? false : null);
                });
            }
            const box = h(input === "textarea" ? "textarea" : "input", {
                type: input === "textarea" ? null : "text",
                className: "vTextField",
                rows: input === "textarea" ? 3 : null,
                value: value === null || value === undefined ? "" : (typeof value === "string" ? value : JSON.stringify(value)),
                placeholder: {number: "e.g. 42 or {{ amount }}", date: "YYYY-MM-DD or a template", datetime: "2025-01-15T10:00:00Z"}[input] || "A value, or a template such as {{ name }}",
            });
            box.addEventListener("input", function () {
                const text = box.value;
                if (input === "number" && text.trim() !== "" && !Number.isNaN(Number(text))) {
                    set(Number(text));
                } else {
                    set(text === "" ? null : text);
                }
            });
            return h("div", {className: "rule-template"}, box, variablesHelper(box, stepIndex));
        }

        function keyValueControl(value, set) {
            const rows = h("div", {className: "rule-pairs"});
            const pairs = Object.entries(isObject(value) ? value : {});
            function write() {
                const out = {};
                rows.querySelectorAll(".rule-pair").forEach(function (row) {
                    const [key, val] = row.querySelectorAll("input");
                    if (key.value.trim()) {
                        out[key.value.trim()] = val.value;
                    }
                });
                set(out);
            }
            function addRow(key, val) {
                const row = h("div", {className: "rule-pair"},
                    h("input", {type: "text", className: "rule-pair-key", placeholder: "Name", value: key, on: {input: write}}),
                    h("input", {type: "text", className: "rule-pair-value", placeholder: "Value", value: typeof val === "string" ? val : JSON.stringify(val), on: {input: write}}),
                    button("Remove", function () { row.remove(); write(); }, {className: "rule-button rule-remove", title: "Remove this line"}),
                );
                rows.insertBefore(row, adder);
            }
            const adder = button("+ Add", function () { addRow("", ""); }, {className: "rule-button rule-add"});
            rows.append(adder);
            pairs.forEach(function ([key, val]) { addRow(key, val); });
            return rows;
        }

        function configField(descriptor, config, path, onChange, stepIndex) {
            const name = descriptor.name;
            const value = config[name];
            function set(next) {
                if (next === undefined) {
                    delete config[name];
                } else {
                    config[name] = next;
                }
                clearError(path);
                onChange(name);
            }
            let control;
            let extra = null;
            const fromEntity = descriptor.choices_from ? choicesFrom(descriptor.choices_from) : null;
            if (descriptor.kind === "boolean") {
                control = h("input", {type: "checkbox", checked: value === undefined ? descriptor.default : value});
                control.addEventListener("change", function () { set(control.checked); });
            } else if (descriptor.kind === "choice" || descriptor.kind === "multiple_choice" || fromEntity) {
                const choices = fromEntity || descriptor.choices || [];
                if (descriptor.kind === "multiple_choice") {
                    control = h("select", {multiple: true, size: Math.min(6, choices.length)});
                    choices.forEach(function ([v, label]) { control.append(option(v, label, (value || []).includes(v))); });
                    control.addEventListener("change", function () {
                        set(Array.from(control.selectedOptions).map(function (o) { return o.value; }));
                    });
                } else {
                    const shown = value === undefined ? (descriptor.default ?? "") : value;
                    control = selectControl(choices, shown, descriptor.required ? "— choose —" : "—", function (v) {
                        set(v === "" ? undefined : v);  // left out: the type's default applies
                    });
                }
            } else if (descriptor.choices_from && !fromEntity) {
                control = h("input", {type: "text", className: "vTextField", value: value ?? "", placeholder: "Choose the entity first (or type a name)"});
                control.addEventListener("input", function () { set(control.value === "" ? undefined : control.value); });
            } else if (descriptor.kind === "integer" && descriptor.unit === "seconds") {
                control = secondsControl(descriptor, value, set);
            } else if (descriptor.kind === "integer" || descriptor.kind === "number") {
                control = h("input", {
                    type: "number", className: "vIntegerField", value: value ?? "",
                    min: descriptor.min_value, max: descriptor.max_value, step: descriptor.kind === "number" ? "any" : "1",
                    placeholder: descriptor.example || null,
                });
                control.addEventListener("input", function () {
                    const text = control.value.trim();
                    set(text === "" ? undefined : (Number.isNaN(Number(text)) ? text : Number(text)));
                });
            } else if (descriptor.kind === "template") {
                const box = h(descriptor.multiline ? "textarea" : "input", {
                    type: descriptor.multiline ? null : "text",
                    className: descriptor.multiline ? "vLargeTextField" : "vTextField",
                    rows: descriptor.multiline ? 6 : null,
                    value: value ?? "",
                    placeholder: descriptor.example ? "e.g. " + descriptor.example : null,
                    spellcheck: descriptor.mode === "json" ? "false" : null,
                });
                box.addEventListener("input", function () {
                    set(box.value === "" && !descriptor.required ? undefined : box.value);
                });
                control = h("div", {className: "rule-template"}, box);
                control.append(variablesHelper(box, stepIndex));
            } else if (descriptor.kind === "list") {
                control = h("input", {
                    type: "text", className: "vTextField", value: Array.isArray(value) ? value.join(", ") : (value ?? ""),
                    placeholder: descriptor.example ? "e.g. " + descriptor.example : "comma-separated",
                });
                control.addEventListener("input", function () {
                    set(control.value.split(",").map(function (part) { return part.trim(); }).filter(Boolean));
                });
            } else if (descriptor.kind === "json" && descriptor.value_of) {
                const spec = fieldSpec(config[descriptor.value_of]);
                control = typedValueControl(spec, value, set, stepIndex);
                if (!spec) {
                    extra = h("p", {className: "help", text: "Choose the field first: the value follows its type."});
                }
            } else if (descriptor.kind === "json" && isObject(descriptor.default)) {
                control = keyValueControl(value, set);
            } else if (descriptor.kind === "json") {
                const box = h("textarea", {className: "vLargeTextField rule-json-small", rows: 3, spellcheck: "false",
                    value: value === undefined ? "" : JSON.stringify(value, null, 2),
                    placeholder: descriptor.example ? "JSON, e.g. " + descriptor.example : "A JSON value"});
                box.addEventListener("input", function () {
                    if (box.value.trim() === "") {
                        set(undefined);
                        return;
                    }
                    try {
                        set(JSON.parse(box.value));
                        box.setCustomValidity("");
                    } catch (error) {
                        set(box.value);
                        box.setCustomValidity("Not valid JSON: it is sent as text.");
                    }
                });
                control = box;
            } else {
                control = h("input", {type: "text", className: "vTextField", value: value ?? "",
                    maxlength: descriptor.max_length, placeholder: descriptor.example ? "e.g. " + descriptor.example : null});
                control.addEventListener("input", function () {
                    set(control.value === "" && !descriptor.required ? undefined : control.value);
                });
            }
            return fieldRow(descriptor, control, path, extra);
        }

        function defaults(kind) {
            const config = {};
            (kind ? kind.fields : []).forEach(function (descriptor) {
                if (descriptor.default !== null && descriptor.default !== undefined) {
                    config[descriptor.name] = clone(descriptor.default);
                }
            });
            return config;
        }

        /* -------------------------------------------------------------- the trigger */

        function renderTrigger() {
            const box = blocks.trigger;
            box.replaceChildren();
            const kind = triggerTypes[triggerSelect.value];
            if (!kind) {
                return;
            }
            box.append(slot("trigger_config"));
            errorSlots.trigger_type = errorSlots.trigger_config;
            box.append(h("p", {className: "rule-description", text: kind.description}));
            kind.fields.forEach(function (descriptor) {
                box.append(configField(descriptor, state.trigger, "trigger_config." + descriptor.name, function (name) {
                    changed();
                    if (name === "cron" || name === "timezone") {
                        showOccurrences();
                    }
                }, 0));
            });
            if (kind.fields.some(function (f) { return f.name === "cron"; })) {
                box.append(h("div", {className: "form-row rule-occurrences", id: "rule-occurrences"}));
                showOccurrences();
            }
        }

        function showOccurrences() {
            clearTimeout(occurrencesTimer);
            occurrencesTimer = setTimeout(function () {
                const target = document.getElementById("rule-occurrences");
                if (!target || !state.trigger.cron) {
                    target?.replaceChildren();
                    return;
                }
                const url = data.urls.occurrences + "?cron=" + encodeURIComponent(state.trigger.cron) +
                    "&timezone=" + encodeURIComponent(state.trigger.timezone || "UTC");
                fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
                    .then(function (response) { return response.json(); })
                    .then(function (body) {
                        if (body.errors) {
                            target.replaceChildren(h("p", {className: "help", text: "Next times: " + body.errors.cron.join(" ")}));
                            return;
                        }
                        target.replaceChildren(
                            h("strong", {text: "Next times (" + (state.trigger.timezone || "UTC") + "): "}),
                            h("ul", {className: "next-occurrences"}, body.occurrences.map(function (o) { return h("li", {text: o.text}); })),
                        );
                    })
                    .catch(function () { target.replaceChildren(); });
            }, 300);
        }

        /* -------------------------------------------------------------- the conditions builder */

        function operatorsFor(fieldName) {
            const spec = fieldSpec(fieldName);
            const names = spec ? spec.operators : schema.operators.map(function (op) { return op.op; });
            return names.map(function (name) { return operators[name]; }).filter(Boolean);
        }

        function conditionValueControl(rule, spec, takes, path) {
            const input = spec ? spec.input : "text";
            function set(value) {
                rule.value = value;
                clearError(path + ".value");
                changed();
            }
            if (takes === "none") {
                delete rule.value;
                return null;
            }
            if (takes === "list") {
                const current = Array.isArray(rule.value) ? rule.value : [];
                if (input === "option") {
                    const box = h("span", {className: "rule-options"});
                    spec.options.forEach(function (choice) {
                        const check = h("input", {type: "checkbox", checked: current.includes(choice), value: choice});
                        check.addEventListener("change", function () {
                            set(Array.from(box.querySelectorAll("input:checked")).map(function (c) { return c.value; }));
                        });
                        box.append(h("label", {className: "rule-option"}, check, " " + choice));
                    });
                    return box;
                }
                const text = h("input", {type: "text", className: "vTextField rule-value", value: current.join(", "), placeholder: "values, comma-separated"});
                text.addEventListener("input", function () {
                    set(text.value.split(",").map(function (part) { return part.trim(); }).filter(Boolean).map(function (part) {
                        return input === "number" && !Number.isNaN(Number(part)) ? Number(part) : part;
                    }));
                });
                return text;
            }
            if (input === "option") {
                return selectControl(spec.options.map(function (o) { return [o, o]; }), rule.value, "— choose —", function (v) { set(v); });
            }
            if (input === "boolean") {
                const current = rule.value === true ? "true" : rule.value === false ? "false" : "";
                return selectControl([["true", "yes"], ["false", "no"]], current, "— choose —", function (v) {
                    set(v === "true" ? true : v === "false" ? false : v);
                });
            }
            const types = {number: "number", date: "date", email: "text", url: "text"};
            const box = h("input", {
                type: types[input] || "text",
                className: "vTextField rule-value",
                step: input === "number" ? "any" : null,
                value: rule.value === undefined || rule.value === null ? "" : String(rule.value),
                placeholder: input === "datetime" ? "2025-01-15T10:00:00Z" : "value",
            });
            box.addEventListener("input", function () {
                if (input === "number" && box.value.trim() !== "" && !Number.isNaN(Number(box.value))) {
                    set(Number(box.value));
                } else {
                    set(box.value);
                }
            });
            return box;
        }

        function renderCondition(rule, path, parent, index, rerender) {
            const row = h("div", {className: "rule-condition"});
            function draw() {
                row.replaceChildren();
                const fields = entityFields();
                let fieldControl;
                if (fields.length) {
                    fieldControl = selectControl(fields.map(function (f) { return [f.name, fieldLabel(f)]; }), rule.field, "— field —", function (v) {
                        rule.field = v;
                        const offered = operatorsFor(v).map(function (op) { return op.op; });
                        if (!offered.includes(rule.op)) {
                            rule.op = offered[0] || "eq";
                        }
                        delete rule.value;
                        if (operators[rule.op] && operators[rule.op].takes !== "none") {
                            rule.value = operators[rule.op].takes === "list" ? [] : "";
                        }
                        clearError(path);
                        changed();
                        draw();
                    });
                } else {
                    fieldControl = h("input", {type: "text", className: "vTextField", value: rule.field || "", placeholder: "field name"});
                    fieldControl.addEventListener("input", function () { rule.field = fieldControl.value; changed(); });
                }
                fieldControl.classList.add("rule-condition-field");
                fieldControl.setAttribute("aria-label", "Field");
                const ops = operatorsFor(rule.field);
                const opControl = selectControl(ops.map(function (op) { return [op.op, op.label]; }), rule.op, null, function (v) {
                    const before = operators[rule.op] ? operators[rule.op].takes : "value";
                    rule.op = v;
                    const takes = operators[v] ? operators[v].takes : "value";
                    if (takes !== before) {
                        delete rule.value;
                        if (takes !== "none") {
                            rule.value = takes === "list" ? [] : "";
                        }
                    }
                    clearError(path);
                    changed();
                    draw();
                });
                opControl.classList.add("rule-condition-op");
                opControl.setAttribute("aria-label", "Operator");
                const spec = fieldSpec(rule.field);
                const takes = operators[rule.op] ? operators[rule.op].takes : "value";
                const valueControl = conditionValueControl(rule, spec, takes, path);
                valueControl?.setAttribute("aria-label", "Value");
                row.append(
                    h("div", {className: "rule-condition-line"},
                        fieldControl, opControl, valueControl,
                        button("Remove", function () {
                            parent.rules.splice(index, 1);
                            clearError(path);
                            rerender();
                        }, {className: "rule-button rule-remove", title: "Remove this condition"}),
                    ),
                    slot(path),
                );
                placeErrors();
            }
            draw();
            return row;
        }

        function renderGroup(group, path, depth, onRemove, rerender) {
            const prefix = path ? path + "." : "";
            const box = h("div", {className: "rule-group" + (depth > 1 ? " rule-group-nested" : "")});
            const match = selectControl([["all", "All"], ["any", "Any"]], group.match || "all", null, function (v) {
                group.match = v;
                changed();
            });
            match.setAttribute("aria-label", "Match");
            box.append(h("div", {className: "rule-group-head"},
                match, h("span", {text: depth > 1 ? " of these are true:" : " of the following are true:"}),
                onRemove ? button("Remove group", onRemove, {className: "rule-button rule-remove"}) : null,
            ));
            box.append(slot(path || "conditions"));
            group.rules.forEach(function (item, index) {
                const itemPath = prefix + "rules." + index;
                if (isObject(item) && Array.isArray(item.rules)) {
                    box.append(renderGroup(item, itemPath, depth + 1, function () {
                        group.rules.splice(index, 1);
                        rerender();
                    }, rerender));
                } else if (isObject(item)) {
                    box.append(renderCondition(item, itemPath, group, index, rerender));
                }
            });
            box.append(h("div", {className: "rule-group-foot"},
                button("+ Condition", function () {
                    group.rules.push(newCondition());
                    rerender();
                }, {className: "rule-button rule-add"}),
                depth < MAX_DEPTH ? button("+ Group", function () {
                    group.rules.push({match: "any", rules: [newCondition()]});
                    rerender();
                }, {className: "rule-button rule-add"}) : null,
            ));
            return box;
        }

        function newCondition() {
            const first = entityFields()[0];
            const op = first ? operatorsFor(first.name)[0] : operators.eq;
            const rule = {field: first ? first.name : "", op: op ? op.op : "eq"};
            if (op && op.takes !== "none") {
                rule.value = op.takes === "list" ? [] : "";
            }
            return rule;
        }

        function renderConditions() {
            const box = blocks.conditions;
            box.replaceChildren();
            const conditions = state.conditions;
            const rerender = function () {
                if (!conditions.rules || !conditions.rules.length) {
                    state.conditions = {};
                }
                changed();
                renderConditions();
                placeErrors();
            };
            if (!isObject(conditions) || !Array.isArray(conditions.rules) || !conditions.rules.length) {
                box.append(
                    slot("conditions"),
                    h("p", {className: "rule-description", text: "No conditions: the rule runs for every record that triggers it."}),
                    h("div", {className: "rule-group-foot"},
                        button("+ Condition", function () {
                            state.conditions = {match: "all", rules: [newCondition()]};
                            changed();
                            renderConditions();
                        }, {className: "rule-button rule-add"}),
                        button("+ Group", function () {
                            state.conditions = {match: "all", rules: [{match: "any", rules: [newCondition()]}]};
                            changed();
                            renderConditions();
                        }, {className: "rule-button rule-add"}),
                    ),
                );
                return;
            }
            if (!conditions.match) {
                conditions.match = "all";
            }
            box.append(renderGroup(conditions, "conditions", 1, null, rerender));
        }

        /* -------------------------------------------------------------- the steps */

        function stepTypeChoices() {
            return schema.steps.map(function (kind) { return [kind.name, kind.label]; });
        }

        function renderSteps() {
            const box = blocks.steps;
            box.replaceChildren(slot("steps"));
            if (!state.steps.length) {
                box.append(h("p", {className: "rule-description", text: "No steps yet: add what the rule does, in order."}));
            }
            state.steps.forEach(function (step, index) {
                box.append(renderStep(step, index));
            });
            const adder = selectControl(stepTypeChoices(), "", "— choose a step —", function () {});
            adder.id = "rule-add-step-type";
            adder.setAttribute("aria-label", "Type of the new step");
            const full = state.steps.length >= schema.max_steps;
            box.append(h("div", {className: "rule-add-step"},
                h("label", {for: adder.id, text: "Add a step:"}), adder,
                button("Add step", function () {
                    if (!adder.value) {
                        adder.focus();
                        return;
                    }
                    state.steps.push({type: adder.value, config: defaults(stepTypes[adder.value])});
                    configCache.steps.push({});
                    clearError("steps");
                    changed();
                    renderSteps();
                    placeErrors();
                    const cards = blocks.steps.querySelectorAll(".rule-step");
                    cards[cards.length - 1]?.querySelector("input, textarea, select.rule-step-field")?.focus();
                }, {id: "rule-add-step", disabled: full ? "disabled" : null}),
                full ? h("span", {className: "help", text: " A rule has at most " + schema.max_steps + " steps."}) : null,
            ));
        }

        function move(index, by) {
            const target = index + by;
            if (target < 0 || target >= state.steps.length) {
                return;
            }
            [state.steps[index], state.steps[target]] = [state.steps[target], state.steps[index]];
            [configCache.steps[index], configCache.steps[target]] = [configCache.steps[target], configCache.steps[index]];
            errors = {};  // they were for the old order
            changed();
            renderSteps();
            placeErrors();
        }

        function renderStep(step, index) {
            const path = "steps." + index;
            const kind = stepTypes[step.type];
            if (!isObject(step.config)) {
                step.config = {};
            }
            const typeSelect = selectControl(stepTypeChoices(), step.type, null, function (value) {
                const cache = configCache.steps[index] || (configCache.steps[index] = {});
                cache[step.type] = step.config;
                step.type = value;
                step.config = cache[value] || defaults(stepTypes[value]);
                clearError(path);
                changed();
                renderSteps();
                placeErrors();
            });
            typeSelect.classList.add("rule-step-type");
            typeSelect.setAttribute("aria-label", "Step " + (index + 1) + " type");
            const card = h("div", {className: "rule-step", dataset: {index: String(index)}});
            const last = index === state.steps.length - 1;
            card.append(h("div", {className: "rule-step-head"},
                h("span", {className: "rule-step-number", text: "Step " + (index + 1)}),
                typeSelect,
                h("span", {className: "rule-step-tools"},
                    button("↑", function () { move(index, -1); }, {title: "Move up", "aria-label": "Move step " + (index + 1) + " up", disabled: index === 0 ? "disabled" : null}),
                    button("↓", function () { move(index, 1); }, {title: "Move down", "aria-label": "Move step " + (index + 1) + " down", disabled: last ? "disabled" : null}),
                    button("Remove", function () {
                        state.steps.splice(index, 1);
                        configCache.steps.splice(index, 1);
                        errors = {};
                        changed();
                        renderSteps();
                    }, {className: "rule-button rule-remove", "aria-label": "Remove step " + (index + 1)}),
                ),
            ));
            card.append(slot(path));
            errorSlots[path + ".type"] = errorSlots[path];
            errorSlots[path + ".config"] = errorSlots[path];
            if (!kind) {
                card.append(h("p", {className: "errornote", text: "Unknown step type “" + step.type + "”: choose another one."}));
                return card;
            }
            card.append(h("p", {className: "rule-description", text: kind.description}));
            const fields = h("div", {className: "rule-step-fields"});
            kind.fields.forEach(function (descriptor) {
                fields.append(configField(descriptor, step.config, path + ".config." + descriptor.name, function (name) {
                    changed();
                    const dependents = kind.fields.filter(function (f) { return f.value_of === name; });
                    dependents.forEach(function (dependent) {
                        const old = fields.querySelector('[data-option="' + CSS.escape(dependent.name) + '"]');
                        const fresh = configField(dependent, step.config, path + ".config." + dependent.name, function () { changed(); }, index);
                        old.replaceWith(fresh);
                    });
                }, index));
            });
            card.append(fields);
            const result = h("div", {className: "rule-step-preview", "aria-live": "polite"});
            card.append(h("div", {className: "rule-step-foot"},
                button("Preview this step", function () { preview(index, result); }, {className: "rule-button rule-preview-step"}),
            ), result);
            return card;
        }

        /* -------------------------------------------------------------- preview on a record */

        function previewPanel() {
            return document.getElementById("rule-preview");
        }

        function chosenRecord() {
            const hidden = previewPanel()?.querySelector("[data-record-id]");
            return hidden ? hidden.value : "";
        }

        function preview(stepIndex, target) {
            const record = chosenRecord();
            const panelResult = document.getElementById("rule-preview-result");
            const out = stepIndex === null ? panelResult : target;
            if (!record) {
                out.replaceChildren(h("p", {className: "errornote", text: "Choose a record to preview on, in “Preview on a record” below the steps."}));
                previewPanel()?.querySelector("input[type=search]")?.focus();
                return;
            }
            out.replaceChildren(h("p", {className: "help", text: "Previewing…"}));
            fetch(data.urls.preview, {
                method: "POST",
                credentials: "same-origin",
                headers: {
                    "Content-Type": "application/json",
                    Accept: "application/json",
                    "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]")?.value || cookie("csrftoken"),
                },
                body: JSON.stringify({
                    rule: data.rule_id,
                    workspace: workspaceId,
                    entity: entitySelect ? entitySelect.value : null,
                    record: record,
                    name: document.getElementById("id_name")?.value || "",
                    trigger_type: triggerSelect.value,
                    trigger_config: state.trigger,
                    conditions: state.conditions,
                    steps: state.steps,
                }),
            })
                .then(function (response) { return response.json().then(function (body) { return [response.status, body]; }); })
                .then(function ([status, body]) {
                    if (status !== 200) {
                        errors = body.errors || {};
                        placeErrors();
                        const own = Object.entries(errors).filter(function ([key]) { return ["record", "entity", "non_field_errors"].includes(key); });
                        out.replaceChildren(h("p", {className: "errornote", text: own.length
                            ? own.map(function ([, messages]) { return messages.join(" "); }).join(" ")
                            : "The rule is not valid yet: see the messages beside the fields."}));
                        return;
                    }
                    errors = {};
                    placeErrors();
                    out.replaceChildren(renderOutcome(body.outcome, stepIndex));
                })
                .catch(function (error) {
                    out.replaceChildren(h("p", {className: "errornote", text: "The preview failed: " + error.message}));
                });
        }

        function keyLabel(key, value) {
            // "waits_seconds" (shown as a duration) -> "Waits"; "url" -> "URL"; "record_id" -> "Record ID".
            const name = key.endsWith("_seconds") && typeof value === "number" ? key.slice(0, -8) : key;
            const words = name.split("_").map(function (word) {
                return {url: "URL", id: "ID", json: "JSON"}[word] || word;
            }).join(" ");
            return words.charAt(0).toUpperCase() + words.slice(1);
        }

        function valueNode(key, value) {
            if (key.endsWith("_seconds") && typeof value === "number") {
                return document.createTextNode(durationText(value));
            }
            if (typeof value === "boolean") {
                return document.createTextNode(value ? "yes" : "no");
            }
            if (value === null || value === undefined || value === "") {
                return document.createTextNode("—");
            }
            if (typeof value === "object") {
                return h("pre", {className: "preview-text", text: JSON.stringify(value, null, 2)});
            }
            const text = String(value);
            if (key.endsWith("_at") && !Number.isNaN(Date.parse(text))) {
                return document.createTextNode(new Date(text).toLocaleString());
            }
            if (/^\s*[{[]/.test(text)) {
                try {
                    return h("pre", {className: "preview-text", text: JSON.stringify(JSON.parse(text), null, 2)});
                } catch (error) { /* not JSON: shown as it is */ }
            }
            return text.includes("\n") ? h("pre", {className: "preview-text", text: text}) : document.createTextNode(text);
        }

        function renderStepPreview(step) {
            const kind = stepTypes[step.type];
            const box = h("div", {className: "preview-step"});
            box.append(h("h4", {text: "Step " + (step.index + 1) + " · " + (kind ? kind.label : step.type)}));
            if (step.error) {
                box.append(h("p", {className: "preview-error", text: step.error}));
            }
            const preview = step.preview;
            if (isObject(preview)) {
                const table = h("table", {className: "preview-table"});
                Object.entries(preview).forEach(function ([key, value]) {
                    if (key === "html" || (key.endsWith("_error") && (value === null || value === ""))) {
                        return;
                    }
                    table.append(h("tr", {}, h("th", {text: keyLabel(key, value)}), h("td", {}, valueNode(key, value))));
                });
                box.append(table);
                if (typeof preview.html === "string") {
                    // The email as the recipient sees it, in a sandbox: no scripts, no same-origin access.
                    const frame = h("iframe", {title: "Email preview", sandbox: "", className: "preview-email"});
                    frame.srcdoc = preview.html;
                    box.append(frame);
                }
            } else if (preview !== null && preview !== undefined) {
                box.append(valueNode("", preview));
            }
            return box;
        }

        function renderOutcome(outcome, stepIndex) {
            const box = h("div", {className: "preview-outcome"});
            if (stepIndex === null) {
                box.append(h("p", {className: "preview-summary"},
                    "On “" + outcome.record_label + "”, the trigger ",
                    h("strong", {text: outcome.trigger_matches ? "matches" : "does not match"}),
                    " and the conditions ",
                    h("strong", {text: outcome.conditions_match ? "match" : "do not match"}),
                    ". ", outcome.trigger_note ? outcome.trigger_note + " " : "",
                    "Nothing was sent, written or logged.",
                ));
                if ((outcome.next_occurrences_text || []).length) {
                    box.append(h("p", {}, h("strong", {text: "Next times: "}), outcome.next_occurrences_text.join(" · ")));
                }
            }
            (outcome.steps || []).forEach(function (step) {
                if (stepIndex === null || step.index === stepIndex) {
                    box.append(renderStepPreview(step));
                }
            });
            return box;
        }

        function setUpPreviewPanel() {
            const panel = previewPanel();
            if (!panel) {
                return;
            }
            blocks.steps.after(panel);
            panel.hidden = false;
            document.getElementById("rule-preview-run").addEventListener("click", function () { preview(null, null); });
            updateRecordSearch();
        }

        function updateRecordSearch() {
            const picker = previewPanel()?.querySelector("[data-record-picker]");
            if (!picker) {
                return;
            }
            const input = picker.querySelector("input[type=search]");
            const hidden = picker.querySelector("[data-record-id]");
            if (!entity || !workspaceId) {
                picker.dataset.searchUrl = "";
                input.disabled = true;
                input.placeholder = "Choose the workspace and entity first";
            } else {
                picker.dataset.searchUrl = data.urls.records.replace(data.placeholder_id, entity.id) + "?workspace=" + encodeURIComponent(workspaceId);
                input.disabled = false;
                input.placeholder = "Type a name, an email or paste a record id";
            }
            if (hidden.dataset.entity !== (entity ? entity.id : "")) {
                hidden.value = "";
                input.value = "";
                hidden.dataset.entity = entity ? entity.id : "";
            }
        }

        /* -------------------------------------------------------------- workspace and entity */

        function onSelectChange(select, handler) {
            if (window.django && window.django.jQuery) {
                window.django.jQuery(select).on("change", handler);  // select2 (autocomplete) reports through jQuery
            } else {
                select.addEventListener("change", handler);
            }
        }

        function loadEntity(entityId) {
            if (!entityId || !workspaceId) {
                entity = null;
                renderAll();
                return;
            }
            const url = data.urls.entity.replace(data.placeholder_id, entityId) + "?workspace=" + encodeURIComponent(workspaceId);
            fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
                .then(function (response) { return response.ok ? response.json() : null; })
                .then(function (schemaOfEntity) {
                    entity = schemaOfEntity;
                    renderAll();
                });
        }

        function loadEntities() {
            if (!entitySelect) {
                return;
            }
            const chosen = entitySelect.value;
            entitySelect.replaceChildren(option("", workspaceId ? "---------" : "Choose the workspace first", !chosen));
            if (!workspaceId) {
                entitySelect.disabled = true;
                loadEntity("");
                return;
            }
            fetch(data.urls.entities + "?workspace=" + encodeURIComponent(workspaceId), {credentials: "same-origin", headers: {Accept: "application/json"}})
                .then(function (response) { return response.ok ? response.json() : {entities: []}; })
                .then(function (body) {
                    entitySelect.disabled = false;
                    body.entities.forEach(function (item) {
                        entitySelect.append(option(item.id, item.name, item.id === chosen));
                    });
                    if (entitySelect.value !== chosen || !body.entities.length) {
                        loadEntity(entitySelect.value);
                    }
                    if (!body.entities.length) {
                        entitySelect.replaceChildren(option("", "(this workspace has no entities)", true));
                    }
                });
        }

        /* -------------------------------------------------------------- modes */

        function renderAll() {
            errorSlots = {};
            errorSlots._general = blocks.general;
            renderTrigger();
            renderConditions();
            renderSteps();
            updateRecordSearch();
            placeErrors();
        }

        function setMode(next) {
            const note = blocks.modeNote;
            note.replaceChildren();
            if (next === "form") {
                const parsed = parseAreas();
                if (parsed.error) {
                    note.append(h("span", {className: "errornote", text: "The JSON cannot be shown as a form — " + parsed.error}));
                    next = "json";
                } else {
                    state.trigger = parsed.value.trigger_config;
                    state.conditions = parsed.value.conditions;
                    state.steps = parsed.value.steps;
                    renderAll();
                }
            } else {
                sync();
            }
            mode = next;
            document.body.classList.toggle("rule-editor-json", mode === "json");
            document.body.classList.toggle("rule-editor-form", mode === "form");
            blocks.modeForm.setAttribute("aria-pressed", String(mode === "form"));
            blocks.modeJson.setAttribute("aria-pressed", String(mode === "json"));
            if (mode === "json" && !note.childNodes.length) {
                note.append(h("span", {className: "help", text: "The rule as the API sees it. Switching back keeps what you write here."}));
            }
        }

        function build() {
            const whenRow = document.querySelector(".form-row.field-trigger_type");
            const conditionsRow = document.querySelector(".form-row.field-conditions");
            const stepsRow = document.querySelector(".form-row.field-steps");
            if (!whenRow || !conditionsRow || !stepsRow || !form) {
                return false;
            }
            blocks.trigger = h("div", {className: "rule-editor-block rule-trigger", id: "rule-trigger"});
            blocks.conditions = h("div", {className: "rule-editor-block rule-conditions", id: "rule-conditions"},);
            blocks.steps = h("div", {className: "rule-editor-block rule-steps", id: "rule-steps"});
            blocks.general = h("div", {className: "rule-error-slot"});
            whenRow.after(blocks.trigger);
            const conditionsTitle = h("div", {className: "form-row rule-section-title"}, h("h3", {text: "Conditions"}),
                h("span", {className: "help", text: "Only records that meet these run the steps."}));
            conditionsRow.after(conditionsTitle, blocks.conditions);
            stepsRow.after(blocks.steps);
            blocks.modeForm = button("Form", function () { setMode("form"); }, {className: "rule-mode", id: "rule-mode-form"});
            blocks.modeJson = button("JSON (advanced)", function () { setMode("json"); }, {className: "rule-mode", id: "rule-mode-json"});
            blocks.modeNote = h("span", {className: "rule-mode-note"});
            const bar = h("div", {className: "rule-modes", id: "rule-modes"},
                h("span", {text: "Edit the trigger, conditions and steps with: "}), blocks.modeForm, blocks.modeJson, blocks.modeNote);
            whenRow.closest("fieldset").before(bar, blocks.general);
            triggerSelect.addEventListener("change", function () {
                const previous = triggerSelect.dataset.current;
                if (previous) {
                    configCache.trigger[previous] = state.trigger;
                }
                triggerSelect.dataset.current = triggerSelect.value;
                state.trigger = configCache.trigger[triggerSelect.value] || defaults(triggerTypes[triggerSelect.value]);
                clearError("trigger_config");
                changed();
                renderAll();
            });
            triggerSelect.dataset.current = triggerSelect.value;
            if (entitySelect) {
                entitySelect.addEventListener("change", function () { loadEntity(entitySelect.value); });
            }
            if (workspaceSelect) {
                onSelectChange(workspaceSelect, function () {
                    workspaceId = workspaceSelect.value || null;
                    loadEntities();
                });
                if (!workspaceId && entitySelect && !entitySelect.value) {
                    entitySelect.disabled = true;
                    entitySelect.replaceChildren(option("", "Choose the workspace first", true));
                }
            }
            form.addEventListener("submit", function () {
                if (mode === "form") {
                    sync();
                }
                if (entitySelect) {
                    entitySelect.disabled = false;  // a disabled select would not be sent
                }
            });
            setUpPreviewPanel();
            return true;
        }

        if (!build()) {
            return;
        }
        const hasJsonError = PARTS.some(function (name) {
            return document.querySelector(".form-row.field-" + name + " .errorlist") && !Object.keys(errors).some(function (key) {
                return key === name || key.startsWith(name + ".");
            });
        });
        setMode(hasJsonError ? "json" : "form");
    }

    document.addEventListener("DOMContentLoaded", function () {
        const node = document.getElementById("rule-editor-data");
        if (node) {
            RuleEditor(JSON.parse(node.textContent));
        }
    });
})();

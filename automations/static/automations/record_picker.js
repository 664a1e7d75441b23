/* A record picker for the rule test page: type part of a record's name (or paste its id), pick one of
   the matches fetched from the page's search URL. Plain JavaScript, no external assets. */
"use strict";
(function () {
    function setUp(picker) {
        const hidden = picker.querySelector("[data-record-id]");
        const input = picker.querySelector("input[type=search]");
        const list = picker.querySelector("[role=listbox]");
        let results = [];
        let active = -1;
        let timer = null;
        let request = 0;

        function close() {
            list.hidden = true;
            input.setAttribute("aria-expanded", "false");
            active = -1;
        }

        function choose(index) {
            const record = results[index];
            if (!record) {
                return;
            }
            hidden.value = record.id;
            input.value = record.label;
            close();
        }

        function highlight(index) {
            active = index;
            list.querySelectorAll("[role=option]").forEach(function (option, i) {
                option.setAttribute("aria-selected", i === index ? "true" : "false");
            });
        }

        function show(found) {
            results = found;
            list.replaceChildren();
            if (!found.length) {
                const empty = document.createElement("li");
                empty.className = "record-picker-empty";
                empty.textContent = "No record of this entity matches.";
                list.append(empty);
            }
            found.forEach(function (record, index) {
                const option = document.createElement("li");
                option.setAttribute("role", "option");
                option.id = input.id + "_option_" + index;
                option.dataset.recordId = record.id;
                const label = document.createElement("strong");
                label.textContent = record.label;
                const detail = document.createElement("span");
                detail.textContent = record.detail;
                option.append(label, detail);
                option.addEventListener("mousedown", function (event) {
                    event.preventDefault(); // keep the focus in the box
                    choose(index);
                });
                list.append(option);
            });
            list.hidden = false;
            input.setAttribute("aria-expanded", "true");
            highlight(found.length === 1 ? 0 : -1);
        }

        function search() {
            const mine = ++request;
            const base = picker.dataset.searchUrl;
            if (!base) {
                return;
            }
            const url = base + (base.includes("?") ? "&" : "?") + "q=" + encodeURIComponent(input.value.trim());
            fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"})
                .then(function (response) { return response.json(); })
                .then(function (body) {
                    if (mine === request && document.activeElement === input) {
                        show(body.results || []);
                    }
                })
                .catch(close);
        }

        input.addEventListener("input", function () {
            hidden.value = "";
            request++; // answers to earlier text are stale now
            clearTimeout(timer);
            timer = setTimeout(search, 150);
        });
        input.addEventListener("focus", search);
        input.addEventListener("blur", close);
        input.addEventListener("keydown", function (event) {
            if (event.key === "ArrowDown" || event.key === "ArrowUp") {
                event.preventDefault();
                if (list.hidden) {
                    search();
                    return;
                }
                const step = event.key === "ArrowDown" ? 1 : -1;
                highlight(Math.max(0, Math.min(results.length - 1, active + step)));
            } else if (event.key === "Enter" && !list.hidden && active >= 0) {
                event.preventDefault();
                choose(active);
            } else if (event.key === "Escape") {
                close();
            }
        });
        // A pasted id that was never picked from the list is sent as it is (the form checks it).
        picker.closest("form").addEventListener("submit", function () {
            if (!hidden.value && /^[0-9a-f-]{32,36}$/i.test(input.value.trim())) {
                hidden.value = input.value.trim();
            }
        });
    }

    document.addEventListener("DOMContentLoaded", function () {
        document.querySelectorAll("[data-record-picker]").forEach(setUp);
    });
})();

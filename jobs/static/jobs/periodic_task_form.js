// The periodic-task form: before saving, show the chosen schedule in words and its next five runs
// (from the admin's preview URL), and a chosen crontab in words (django-celery-beat's help, moved
// here from its inline script, which the Content-Security-Policy does not run).
(function ($) {
  const script = document.currentScript;
  const previewUrl = script.dataset.previewUrl;
  const readableCrontabs = JSON.parse(document.getElementById("readable-crontabs").textContent);
  const crontabHelp = $(".field-crontab .help").html();

  function preview() {
    const params = new URLSearchParams();
    for (const kind of ["interval", "crontab", "solar", "clocked"]) {
      params.set(kind, $("#id_" + kind).val() || "");
    }
    const date = $("#id_start_time_0").val(), time = $("#id_start_time_1").val();
    if (date) params.set("start_time", date + "T" + (time || "00:00:00"));
    params.set("one_off", $("#id_one_off").is(":checked"));
    params.set("enabled", $("#id_enabled").is(":checked"));
    fetch(previewUrl + "?" + params)
      .then(response => response.json())
      .then(data => {
        $(".field-schedule_in_words .readonly").text(data.error || data.schedule);
        const runs = $(".field-upcoming_runs .readonly").empty();
        for (const run of data.next_runs) runs.append($("<div>").text(run));
        if (!data.error && !data.next_runs.length) runs.text("None (disabled, finished, or no schedule yet).");
      });
  }

  function crontabInWords() {
    const words = readableCrontabs[$("#id_crontab").val()];
    const help = $(".field-crontab .help").html(crontabHelp);
    if (words) help.append($("<br>"), document.createTextNode(`In words: ${words}`));
  }

  $(".field-crontab_translation").hide();
  $("#id_crontab").on("change", crontabInWords);
  for (const field of ["interval", "crontab", "solar", "clocked", "start_time_0", "start_time_1", "one_off", "enabled"]) {
    $("#id_" + field).on("change", preview);
  }
})(django.jQuery);

# lme4 reference for the singular-fit rule (lmmsim.fit.status.singular_mask): REML fits of
# random-intercept-and-slope models on the datasets that tests/reference/singular_datasets.py
# writes (with their manifest) into DIR.
#   .venv/bin/python tests/reference/singular_datasets.py /tmp/singular_data
#   Rscript tests/reference/singular_lme4.R /tmp/singular_data tests/reference/singular_lme4.csv
# Each dataset is fitted twice: with lme4's default control ("default", what a user sees) and
# with bobyqa at tight tolerances ("tight", the optimum to compare with). isSingular() is
# lme4 1.1-31's rule: any(getME(fit, "theta")[getME(fit, "lower") == 0] < 1e-4).
# Output: one row per dataset, fit and quantity (long format).
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
manifest <- read.csv(file.path(dir, "manifest.csv"), stringsAsFactors = FALSE)
controls <- list(
  default = lmerControl(check.conv.singular = "ignore"),
  tight = lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 2e-4, rhoend = 2e-10, maxfun = 1e5),
                      check.conv.singular = "ignore")
)
rows <- list()
add <- function(m, fit, quantity, term, value) {
  rows[[length(rows) + 1]] <<- data.frame(dataset = m$name, sha256 = m$sha256, fit = fit, quantity = quantity,
                                          term = term, value = value)
}
for (i in seq_len(nrow(manifest))) {
  m <- manifest[i, ]
  data <- read.csv(file.path(dir, paste0(m$name, ".csv")), stringsAsFactors = TRUE)
  for (name in names(controls)) {
    fit <- suppressMessages(suppressWarnings(lmer(as.formula(m$formula), data = data, REML = TRUE,
                                                  control = controls[[name]])))
    add(m, name, "criterion", "", REMLcrit(fit))
    add(m, name, "singular", "", as.numeric(isSingular(fit)))
    th <- getME(fit, "theta")
    lower <- getME(fit, "lower")
    for (j in seq_along(th)) {
      add(m, name, "theta", names(th)[j], th[[j]])
      add(m, name, "lower", names(th)[j], lower[[j]])
    }
    vc <- as.data.frame(VarCorr(fit))
    for (j in seq_len(nrow(vc))) {
      is_sd <- is.na(vc$var2[j])
      term <- paste(vc$grp[j], vc$var1[j], if (is_sd) "" else vc$var2[j], sep = "|")
      add(m, name, if (is_sd) "sd" else "corr", term, vc$sdcor[j])
    }
  }
}
write.csv(do.call(rbind, rows), args[2], row.names = FALSE)
cat(sprintf("lme4 %s: %d datasets\n", packageVersion("lme4"), nrow(manifest)))

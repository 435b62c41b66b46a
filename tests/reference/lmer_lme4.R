# lme4 and lmerTest reference for lmmsim.fit.lmer: REML fits of crossed subjects x items
# models with correlated by-subject (and by-item) random slopes, on the datasets that
# tests/reference/lmer_datasets.py writes (with their manifest) into DIR.
#   .venv/bin/python tests/reference/lmer_datasets.py /tmp/lmer_data
#   Rscript tests/reference/lmer_lme4.R /tmp/lmer_data tests/reference/lmer_lme4.csv
# Output: one row per dataset and quantity (long format); df is lmerTest's Satterthwaite df.
suppressPackageStartupMessages(library(lmerTest))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
manifest <- read.csv(file.path(dir, "manifest.csv"), stringsAsFactors = FALSE)
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 2e-4, rhoend = 2e-10, maxfun = 1e5),
                    check.conv.singular = "ignore")
rows <- list()
add <- function(m, quantity, term, value) {
  rows[[length(rows) + 1]] <<- data.frame(dataset = m$name, sha256 = m$sha256, quantity = quantity,
                                          term = term, value = value)
}
for (i in seq_len(nrow(manifest))) {
  m <- manifest[i, ]
  data <- read.csv(file.path(dir, paste0(m$name, ".csv")), stringsAsFactors = TRUE)
  fit <- suppressMessages(suppressWarnings(lmer(as.formula(m$formula), data = data, REML = TRUE, control = ctrl)))
  add(m, "criterion", "", REMLcrit(fit))
  coefs <- suppressMessages(suppressWarnings(summary(fit)$coefficients))
  for (j in seq_len(nrow(coefs))) {
    add(m, "beta", rownames(coefs)[j], coefs[j, "Estimate"])
    add(m, "se", rownames(coefs)[j], coefs[j, "Std. Error"])
    add(m, "df", rownames(coefs)[j], coefs[j, "df"])
  }
  vc <- as.data.frame(VarCorr(fit))
  for (j in seq_len(nrow(vc))) {
    is_sd <- is.na(vc$var2[j])
    term <- paste(vc$grp[j], vc$var1[j], if (is_sd) "" else vc$var2[j], sep = "|")
    add(m, if (is_sd) "sd" else "corr", term, vc$sdcor[j])
  }
  add(m, "singular", "", as.numeric(isSingular(fit)))
}
write.csv(do.call(rbind, rows), args[2], row.names = FALSE)
cat(sprintf("lme4 %s, lmerTest %s: %d datasets\n", packageVersion("lme4"), packageVersion("lmerTest"),
            nrow(manifest)))

# lmerTest reference for the Satterthwaite df of lmmsim.fit.exact.block (REML and ML fits),
# on the datasets of tests/reference/block_datasets.py (see block_lme4.R).
#   Rscript tests/reference/block_lmertest.R /tmp/block_data tests/reference/block_lmertest.csv
suppressPackageStartupMessages(library(lmerTest))
args <- commandArgs(trailingOnly = TRUE)
manifest <- read.csv(file.path(args[1], "manifest.csv"), stringsAsFactors = FALSE)
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 2e-4, rhoend = 2e-10, maxfun = 1e5),
                    check.conv.singular = "ignore")
rows <- list()
for (i in seq_len(nrow(manifest))) {
  m <- manifest[i, ]
  data <- read.csv(file.path(args[1], paste0(m$name, ".csv")), stringsAsFactors = TRUE)
  for (reml in c(TRUE, FALSE)) {
    fit <- suppressMessages(suppressWarnings(lmer(as.formula(m$formula), data = data, REML = reml, control = ctrl)))
    coefs <- suppressMessages(suppressWarnings(summary(fit)$coefficients))
    rows[[length(rows) + 1]] <- data.frame(dataset = m$name, sha256 = m$sha256, method = if (reml) "REML" else "ML",
                                           term = rownames(coefs), df = coefs[, "df"],
                                           singular = isSingular(fit))
  }
}
write.csv(do.call(rbind, rows), args[2], row.names = FALSE)
cat(sprintf("lmerTest %s: %d datasets\n", packageVersion("lmerTest"), nrow(manifest)))

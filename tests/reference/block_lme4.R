# lme4 reference for lmmsim.fit.exact.block: REML and ML fits of the datasets that
# tests/reference/block_datasets.py writes (with their manifest) into DIR.
#   .venv/bin/python tests/reference/block_datasets.py /tmp/block_data
#   Rscript tests/reference/block_lme4.R /tmp/block_data tests/reference/block_lme4.csv
# Output: one row per dataset, method and quantity (long format).
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
manifest <- read.csv(file.path(dir, "manifest.csv"), stringsAsFactors = FALSE)
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 2e-4, rhoend = 2e-10, maxfun = 1e5),
                    check.conv.singular = "ignore")
rows <- list()
add <- function(name, sha, method, quantity, term, value) {
  rows[[length(rows) + 1]] <<- data.frame(dataset = name, sha256 = sha, method = method,
                                          quantity = quantity, term = term, value = value)
}
for (i in seq_len(nrow(manifest))) {
  m <- manifest[i, ]
  data <- read.csv(file.path(dir, paste0(m$name, ".csv")), stringsAsFactors = TRUE)
  for (reml in c(TRUE, FALSE)) {
    method <- if (reml) "REML" else "ML"
    fit <- suppressMessages(suppressWarnings(lmer(as.formula(m$formula), data = data, REML = reml, control = ctrl)))
    add(m$name, m$sha256, method, "criterion", "", if (reml) REMLcrit(fit) else deviance(fit))
    beta <- fixef(fit)
    se <- sqrt(diag(as.matrix(vcov(fit))))
    for (j in seq_along(beta)) {
      add(m$name, m$sha256, method, "beta", names(beta)[j], beta[[j]])
      add(m$name, m$sha256, method, "se", names(beta)[j], se[[j]])
    }
    vc <- as.data.frame(VarCorr(fit))
    for (j in seq_len(nrow(vc))) {
      is_sd <- is.na(vc$var2[j])
      term <- paste(vc$grp[j], vc$var1[j], if (is_sd) "" else vc$var2[j], sep = "|")
      add(m$name, m$sha256, method, if (is_sd) "sd" else "corr", term, vc$sdcor[j])
    }
    add(m$name, m$sha256, method, "singular", "", as.numeric(isSingular(fit)))
    th <- getME(fit, "theta")
    for (j in seq_along(th)) add(m$name, m$sha256, method, "theta", names(th)[j], th[[j]])
  }
}
out <- do.call(rbind, rows)
write.csv(out, args[2], row.names = FALSE)
cat(sprintf("lme4 %s: %d datasets\n", packageVersion("lme4"), nrow(manifest)))

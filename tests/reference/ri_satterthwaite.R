# lmerTest's Satterthwaite t tests for the random-intercept datasets of ri_datasets.py.
#
# Usage (from the repository root; R >= 4 with lme4 and lmerTest, e.g. Debian's
# r-cran-lme4 and r-cran-lmertest):
#   python3 tests/reference/ri_datasets.py /tmp/ri_data.csv
#   Rscript tests/reference/ri_satterthwaite.R /tmp/ri_data.csv tests/reference/ri_satterthwaite.csv
#
# Output: one row per dataset x tested contrast (every coefficient, then "contrast" =
# the sum of all coefficients but the intercept), with lme4's estimates (theta, sigma,
# REML/ML criterion, isSingular) and lmerTest's estimate, SE, df, t and p.
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
})
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1], colClasses = c(sha256 = "character", group = "character"))
rows <- list()
for (k in sort(unique(data$dataset))) {
  d <- data[data$dataset == k, ]
  xs <- grep("^x[0-9]$", names(d), value = TRUE)
  xs <- xs[colSums(is.na(d[xs])) == 0]
  f <- reformulate(c(xs, "(1 | group)"), response = "y")
  reml <- d$reml[1] == 1
  fit <- suppressWarnings(suppressMessages(lmerTest::lmer(f, data = d, REML = reml)))
  p <- length(fixef(fit))
  L <- rbind(diag(p), c(0, rep(1, p - 1)))
  names <- c("Intercept", xs, "contrast")
  for (i in seq_len(nrow(L))) {
    tt <- suppressWarnings(contest(fit, L[i, ], joint = FALSE))
    rows[[length(rows) + 1]] <- data.frame(
      dataset = k, sha256 = d$sha256[1], reml = as.integer(reml), term = names[i],
      n = nrow(d), J = length(unique(d$group)), theta = getME(fit, "theta")[[1]],
      sigma = sigma(fit), criterion = as.numeric(-2 * logLik(fit)), singular = isSingular(fit),
      estimate = tt$Estimate, se = tt$`Std. Error`, df = tt$df, t = tt$`t value`, p = tt$`Pr(>|t|)`
    )
  }
}
out <- do.call(rbind, rows)
write.csv(out, args[2], row.names = FALSE)
cat(sprintf("%s: %d datasets (%d singular), R %s, lme4 %s, lmerTest %s\n", args[2], length(unique(out$dataset)),
            sum(out$singular[!duplicated(out$dataset)]), getRversion(), packageVersion("lme4"),
            packageVersion("lmerTest")))

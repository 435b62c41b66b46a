# clubSandwich's CR2 (Bell-McCaffrey) t tests with Satterthwaite df for OLS fits of the
# datasets of ri_datasets.py, clustered by group.
#
# Usage (from the repository root; R >= 4 with clubSandwich, e.g. Debian's
# r-cran-clubsandwich):
#   python3 tests/reference/ri_datasets.py /tmp/ri_data.csv
#   Rscript tests/reference/cr2_clubsandwich.R /tmp/ri_data.csv tests/reference/cr2_clubsandwich.csv
#
# Output: one row per dataset x contrast (every coefficient, then "contrast" = the sum of
# all coefficients but the intercept): estimate, CR2 SE, Satterthwaite df, t and p.
suppressPackageStartupMessages(library(clubSandwich))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1], colClasses = c(sha256 = "character", group = "character"))
rows <- list()
for (k in sort(unique(data$dataset))) {
  d <- data[data$dataset == k, ]
  xs <- grep("^x[0-9]$", names(d), value = TRUE)
  xs <- xs[colSums(is.na(d[xs])) == 0]
  fit <- lm(reformulate(xs, response = "y"), data = d)
  V <- vcovCR(fit, cluster = d$group, type = "CR2")
  p <- length(coef(fit))
  L <- rbind(diag(p), c(0, rep(1, p - 1)))
  rownames(L) <- c("Intercept", xs, "contrast")
  tt <- linear_contrast(fit, vcov = V, contrasts = L, test = "Satterthwaite", p_values = TRUE)
  rows[[length(rows) + 1]] <- data.frame(
    dataset = k, sha256 = d$sha256[1], term = rownames(L), n = nrow(d), J = length(unique(d$group)),
    estimate = tt$Est, se = tt$SE, df = tt$df, p = tt$p_val
  )
}
out <- do.call(rbind, rows)
write.csv(out, args[2], row.names = FALSE)
cat(sprintf("%s: %d datasets, R %s, clubSandwich %s\n", args[2], length(unique(out$dataset)), getRversion(),
            packageVersion("clubSandwich")))

# Reference fits from an engine lmmsim did not write: lme4 (REML) and lmerTest.
#
# Regenerate (R >= 4 with lme4, lmerTest, jsonlite), from the repository root:
#   python tests/reference/make_datasets.py      # specs.json + data/*.csv (data not committed)
#   Rscript tests/reference/lme4_reference.R     # writes tests/reference/lme4/*.csv
#
# Outputs (small CSVs, committed; the Python tests read only these):
#   fits.csv       one row per dataset: REML criterion (-2 REML log-lik), sigma, singular
#                  flag, convergence messages; the best of lme4's default optimizer and bobyqa
#   fixed.csv      beta, SE, Satterthwaite df, t and p for every fixed effect
#   varcor.csv     SDs and correlations of the random effects and the residual SD
#   theta.csv      lme4's theta (relative covariance factor), in getME order
#   contrasts.csv  two contrasts L beta per dataset, with Satterthwaite df and p (contest1D)
#   profile.csv    confint(method = "profile") of the SDs for Dyestuff, Pastes and a few lmmsim datasets
# Fixtures: dyestuff.csv and pastes.csv (lme4's data, for the profile tests).
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("--file=", "", args[grep("--file=", args)])
here <- dirname(normalizePath(script))
out <- file.path(here, "lme4")
dir.create(out, showWarnings = FALSE)
specs <- fromJSON(file.path(here, "specs.json"), simplifyVector = FALSE)

conv_messages <- function(fit) {
  m <- c(fit@optinfo$conv$lme4$messages, fit@optinfo$warnings)
  if (length(m) == 0) "" else paste(unlist(m), collapse = " | ")
}

fit_best <- function(formula, data) {
  # lme4's default optimizer, then bobyqa: keep the lower REML criterion.
  fits <- list(
    default = lmerTest::lmer(formula, data = data, REML = TRUE),
    bobyqa = lmerTest::lmer(formula, data = data, REML = TRUE, control = lmerControl(optimizer = "bobyqa"))
  )
  crit <- sapply(fits, REMLcrit)
  list(fit = fits[[which.min(crit)]], optimizer = names(fits)[which.min(crit)], crit = crit)
}

contrast_rows <- function(id, fit) {
  beta <- fixef(fit)
  p <- length(beta)
  names_ <- names(beta)
  # c1: sum of the last two coefficients; c2: second minus last (or intercept minus slope).
  L1 <- numeric(p); L1[c(p - 1, p)] <- 1
  L2 <- numeric(p)
  if (p >= 3) { L2[2] <- 1; L2[p] <- -1 } else { L2[1] <- 1; L2[2] <- -1 }
  rows <- lapply(list(c1 = L1, c2 = L2), function(L) {
    ct <- contest1D(fit, L)
    data.frame(estimate = ct$Estimate, se = ct$`Std. Error`, df = ct$df, t = ct$`t value`, p = ct$`Pr(>|t|)`,
               L = paste(sprintf("%s=%g", names_[L != 0], L[L != 0]), collapse = ";"))
  })
  cbind(id = id, contrast = names(rows), do.call(rbind, rows))
}

fits <- list(); fixed <- list(); varcor <- list(); thetas <- list(); contrasts <- list()
for (spec in specs) {
  id <- spec$id
  data <- read.csv(file.path(here, "data", paste0(id, ".csv")), stringsAsFactors = FALSE)
  best <- fit_best(as.formula(spec$lme4), data)
  fit <- best$fit
  fits[[id]] <- data.frame(
    id = id, reml_crit = REMLcrit(fit), reml_crit_default = best$crit[["default"]],
    reml_crit_bobyqa = best$crit[["bobyqa"]], optimizer = best$optimizer, sigma = sigma(fit),
    singular = isSingular(fit), nobs = nobs(fit), messages = conv_messages(fit)
  )
  co <- summary(fit, ddf = "Satterthwaite")$coefficients
  fixed[[id]] <- data.frame(id = id, term = rownames(co), estimate = co[, "Estimate"], se = co[, "Std. Error"],
                            df = co[, "df"], t = co[, "t value"], p = co[, "Pr(>|t|)"])
  vc <- as.data.frame(VarCorr(fit))
  varcor[[id]] <- data.frame(id = id, grp = vc$grp, var1 = vc$var1, var2 = vc$var2, sdcor = vc$sdcor)
  th <- getME(fit, "theta")
  thetas[[id]] <- data.frame(id = id, name = names(th), theta = unname(th))
  contrasts[[id]] <- contrast_rows(id, fit)
}

write_out <- function(rows, name) {
  frame <- do.call(rbind, rows)
  rownames(frame) <- NULL
  write.csv(frame, file.path(out, name), row.names = FALSE)
}
write_out(fits, "fits.csv")
write_out(fixed, "fixed.csv")
write_out(varcor, "varcor.csv")
write_out(thetas, "theta.csv")
write_out(contrasts, "contrasts.csv")

# Profile intervals of the SDs (REML fits, lme4's default 95 %).
profile_rows <- function(name, formula, data) {
  fit <- lmer(formula, data = data, REML = TRUE)
  ci <- confint(fit, method = "profile", oldNames = FALSE, parm = "theta_")
  data.frame(dataset = name, parameter = rownames(ci), lower = ci[, 1], upper = ci[, 2])
}
write.csv(Dyestuff, file.path(here, "dyestuff.csv"), row.names = FALSE)
write.csv(Pastes, file.path(here, "pastes.csv"), row.names = FALSE)
prof <- list(
  profile_rows("dyestuff", Yield ~ 1 + (1 | Batch), Dyestuff),
  profile_rows("pastes", strength ~ 1 + (1 | batch) + (1 | batch:cask), Pastes)
)
profile_ids <- c("cluster_trial-22-00", "cluster_trial-25-00", "schools-01-00", "uneven_clusters-28-00")
for (spec in specs) {
  if (spec$id %in% profile_ids) {
    data <- read.csv(file.path(here, "data", paste0(spec$id, ".csv")), stringsAsFactors = FALSE)
    prof[[spec$id]] <- profile_rows(spec$id, as.formula(spec$lme4), data)
  }
}
write_out(prof, "profile.csv")
cat(length(specs), "datasets fitted; outputs in", out, "\n")
